-- The console's search inside params (issue 14): `params @> '{"organizerId": "org_demo"}'`.
-- Without it, a containment that matches few tasks walks the whole table (410 ms at 1M
-- tasks); with it, an index lookup. jsonb_path_ops: smaller and faster than the default
-- opclass for `@>`, the only operator the console uses. Its cost on the accept path is
-- measured in BENCHMARKS.md (issue 14); fastupdate (the default) batches its inserts.
-- On a large existing table, create it beforehand without blocking writes
-- (`CREATE INDEX CONCURRENTLY tasks_params_search_idx ON tasks USING gin (params
-- jsonb_path_ops)`); this migration then finds it.
CREATE INDEX IF NOT EXISTS tasks_params_search_idx ON tasks USING gin (params jsonb_path_ops);
