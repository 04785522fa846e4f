-- Durable schedules (issue 13): the truth about periodic work. Every replica runs the ticker;
-- a due row is taken with FOR UPDATE SKIP LOCKED, and its tick's task and the next
-- `next_run_at` are written in one transaction, the task under the idempotency key
-- `schedule:<id>:<tick>` (unique per requester), so one task per tick across any number of
-- replicas, with no leader.
CREATE TABLE schedules (
    id               text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    kind             text NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}',
    -- Exactly one of a cron expression (read in `time_zone`) or an interval (epoch-aligned).
    cron             text,
    interval_seconds integer CHECK (interval_seconds > 0),
    time_zone        text NOT NULL DEFAULT 'UTC',
    catch_up         text NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'all')),
    max_catch_up     integer NOT NULL DEFAULT 24 CHECK (max_catch_up BETWEEN 1 AND 1000),
    paused           boolean NOT NULL DEFAULT false,
    next_run_at      timestamptz NOT NULL,
    last_tick        timestamptz,
    last_run_at      timestamptz,
    last_task_id     uuid,
    -- Who set the current cadence and pause: 'config' (start-up) or 'operator' (a PATCH).
    source           text NOT NULL DEFAULT 'config' CHECK (source IN ('config', 'operator')),
    -- Hash of the configuration that last wrote the row, and every hash seen so far: a
    -- replica applies its configuration only when it is new, so an operator's change
    -- survives restarts, and an old replica of a rolling deploy does not undo a new one.
    config_hash      text NOT NULL,
    config_hashes    text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (interval_seconds IS NULL))
);
-- The ticker's question: which active schedules are due.
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE NOT paused;
