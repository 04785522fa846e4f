-- Pushes messages straight onto a queue's ready list, in apalis-redis' own layout: the body in
-- the data hash, the fields its fetch script reads in the message's meta hash, the id on the
-- active list, and the "jobs available" signal. apalis' own push parks every message in the
-- scheduled set instead, for its next fetch to move it to the list (ZADD, then ZRANGEBYSCORE,
-- RPUSH and ZREM): about a fifth of Redis' time per message, for messages that are always due
-- (ours are pushed when their task is due).
-- KEYS[1] data hash, KEYS[2] active list, KEYS[3] signal list, KEYS[4] meta key prefix;
-- ARGV: id1, body1, id2, body2, ...
local ready = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HSETNX', KEYS[1], id, ARGV[i + 1]) == 1 then
    -- What apalis' push writes for a message without options (it reads these three back).
    redis.call('HSET', KEYS[4] .. ':' .. id, 'attempts', 0, 'max_attempts', 25, 'status', 'Pending')
    ready[#ready + 1] = id
  end
end
if #ready > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ready))
  redis.call('DEL', KEYS[3])
  redis.call('LPUSH', KEYS[3], 1)
end
return #ready
