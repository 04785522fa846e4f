-- Room for updates on the page they start from. A task row is written three or four times in
-- its life (the relay's `pushed_at` mark, the claim, the completion); with every page full, each
-- write puts the new version on another page and adds an entry to every index. With room left,
-- the relay's mark (it changes no indexed column) is a heap-only update: no index is touched.
-- Only pages filled from now on keep the room; older ones are left as they are.
ALTER TABLE tasks SET (fillfactor = 50);

-- Most tasks have no idempotency key: index only those that do, so the claim and completion of
-- a key-less task do not add an entry to this index for each row version. Inserts name the
-- same predicate in `ON CONFLICT`.
-- On a large existing table, create it beforehand without blocking writes (`CREATE UNIQUE INDEX
-- CONCURRENTLY tasks_idempotency_key_idx ON tasks (requester, idempotency_key) WHERE
-- idempotency_key IS NOT NULL`); this migration then finds it.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency_key_idx ON tasks (requester, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency;
