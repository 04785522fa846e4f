-- The swap migration 26 put off: the idempotency index covers only the tasks that have a key.
-- Most tasks have none, and the `UNIQUE (requester, idempotency_key)` constraint gave each of
-- them an entry per row version (the insert, the claim, the completion): measured in the noop
-- drain, Postgres spends about a tenth less CPU per task without them (BENCHMARKS.md, "Issue
-- 15, sixth step").
-- Rolling deploys: the inserts of every release since migration 26 name this index's predicate
-- in `ON CONFLICT`, which both the constraint and this index satisfy. Releases older than
-- migration 25 do not, and their inserts fail against this index alone: upgrade from those
-- through a release that has migration 26 first.
-- On a large existing table, create the index beforehand without blocking writes (`CREATE UNIQUE
-- INDEX CONCURRENTLY tasks_idempotency_key_idx ON tasks (requester, idempotency_key) WHERE
-- idempotency_key IS NOT NULL`); this migration then finds it.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency_key_idx ON tasks (requester, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_idempotency;
