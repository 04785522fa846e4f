-- The deliveries' follow-up of their tasks moved from triggers on `tasks` (migration 10) to
-- the kinds' hooks (`Kind::on_terminal_failure`, `Kind::on_redrive`), which the engine runs
-- in the same transaction as the transition that ends or re-drives a task, whoever makes it
-- (runner, relay, api). The engine's table no longer knows the product's kinds.
DROP TRIGGER IF EXISTS tasks_delivery_follows ON tasks;
DROP FUNCTION IF EXISTS delivery_follows_task();
DROP TRIGGER IF EXISTS tasks_bulk_cancels_children ON tasks;
DROP FUNCTION IF EXISTS bulk_cancels_children();
