-- Paused queues (issue 14): a row = the queue is paused. A paused queue keeps accepting tasks;
-- workers neither relay nor fetch its work until the row is deleted. In Postgres, so the state
-- survives restarts and every replica sees the same.
CREATE TABLE queue_pauses (
    queue     text PRIMARY KEY,
    paused_at timestamptz NOT NULL DEFAULT now(),
    paused_by text NOT NULL
);
