-- The relay reads waiting tasks in (run_at, id) order and remembers where its last pass
-- stopped, so the next pass starts after it instead of reading again, row by row, the tasks
-- it already pushed and no worker has claimed yet (up to QUEUE_MAX_READY of them at the head
-- of every queue; about eight index entries and heap fetches per task in a drain). Tasks
-- enqueued together share one `run_at`, so the id must be in the index for a pass to start
-- in the middle of them. The same rows as before are indexed: only waiting tasks.
-- On a large existing table, build it first without blocking writes (`CREATE INDEX
-- CONCURRENTLY tasks_due_order_idx ON tasks (queue, run_at, id) WHERE status IN ('pending',
-- 'retrying')`); this migration then uses it.
CREATE INDEX IF NOT EXISTS tasks_due_order_idx ON tasks (queue, run_at, id)
    WHERE status IN ('pending', 'retrying');
DROP INDEX IF EXISTS tasks_due_idx;
ALTER INDEX tasks_due_order_idx RENAME TO tasks_due_idx;
