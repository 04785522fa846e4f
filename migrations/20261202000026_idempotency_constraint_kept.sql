-- Migration 25 replaced the `tasks_idempotency` constraint by a unique index over only the
-- tasks that have a key. The inserts of this release name that index's predicate in
-- `ON CONFLICT`, which the constraint satisfies as well; those of earlier releases do not, and
-- fail against the partial index alone ("no unique or exclusion constraint matching the ON
-- CONFLICT specification"). During a rolling deploy the api replicas still on the earlier
-- release would refuse every insert until replaced. So the constraint comes back for now, and
-- the swap waits for a later release, once no replica runs code older than this one (the
-- partial index would spare a key-less task an entry per row version; in the drain benchmark
-- its gain was within the noise, BENCHMARKS.md "Issue 15, third step").
-- On a large existing table, build the index first without blocking writes (`CREATE UNIQUE
-- INDEX CONCURRENTLY tasks_idempotency ON tasks (requester, idempotency_key)`); this
-- migration then uses it.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency ON tasks (requester, idempotency_key);
ALTER TABLE tasks ADD CONSTRAINT tasks_idempotency UNIQUE USING INDEX tasks_idempotency;
DROP INDEX IF EXISTS tasks_idempotency_key_idx;
