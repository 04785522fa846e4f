-- The task backbone: every unit of work a client asks for is a row here. Postgres is the
-- source of truth for status, attempts, progress, result and error history; Redis only
-- carries `{task, kind}` envelopes pointing at these rows (see DESIGN.md §1, §3).
CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    kind             text        NOT NULL,
    queue            text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'retrying', 'dead')),
    params           jsonb       NOT NULL,
    result           jsonb,
    -- last error, and a bounded history of attempt errors (newest last)
    error            jsonb,
    errors           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    progress         smallint    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    stage            text,
    requester        text        NOT NULL,
    idempotency_key  text,
    request_id       text,
    run_at           timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    expires_at       timestamptz,
    lease_expires_at timestamptz,
    worker           text,
    cancel_requested boolean     NOT NULL DEFAULT false,
    -- when a transport message was last pushed to Redis; NULL = none in flight. The relay
    -- pushes rows that are due with no (or a stale) message.
    pushed_at        timestamptz,
    CONSTRAINT tasks_idempotency UNIQUE (requester, idempotency_key)
);

-- Relay: due work per queue that needs a transport message.
CREATE INDEX tasks_due_idx ON tasks (queue, run_at) WHERE status IN ('pending', 'retrying');
-- Relay: running tasks whose worker stopped renewing the lease.
CREATE INDEX tasks_lease_idx ON tasks (queue, lease_expires_at) WHERE status = 'running';
-- Retention of finished tasks.
CREATE INDEX tasks_expires_idx ON tasks (expires_at) WHERE status IN ('completed', 'failed', 'cancelled', 'dead');
-- Operators list and re-drive the dead-letter queue by kind. Partial, so the hot path
-- (every insert and state change of healthy tasks) does not maintain it.
CREATE INDEX tasks_dead_letter_idx ON tasks (kind, created_at) WHERE status IN ('failed', 'dead');

CREATE TABLE organizers (
    id         text PRIMARY KEY,
    name       text        NOT NULL,
    email      text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id           text PRIMARY KEY,
    organizer_id text        REFERENCES organizers (id),
    name         text        NOT NULL,
    type         text        NOT NULL DEFAULT 'standard' CHECK (type IN ('standard', 'premium')),
    starts_at    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Movements of the director ledger (seeds/000, "Ledger y movimientos"). Every entry is
-- written by exactly one task: `task_id` is unique, so a task that runs twice cannot
-- write twice.
CREATE TABLE director_ledger_entries (
    id                 uuid PRIMARY KEY,
    organizer_id       text        NOT NULL REFERENCES organizers (id),
    event_id           text        REFERENCES events (id),
    entry_type         text        NOT NULL CHECK (entry_type IN ('assign_prepaid', 'assign_loan', 'payment')),
    tickets            integer     NOT NULL DEFAULT 0 CHECK (tickets >= 0),
    tickets_equivalent integer     NOT NULL DEFAULT 0 CHECK (tickets_equivalent >= 0),
    amount_cents       bigint      NOT NULL CHECK (amount_cents >= 0),
    currency           char(3)     NOT NULL,
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    task_id            uuid        NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX director_ledger_entries_organizer_idx ON director_ledger_entries (organizer_id, created_at DESC);
CREATE INDEX director_ledger_entries_event_idx ON director_ledger_entries (event_id, created_at);
CREATE INDEX director_ledger_entries_created_idx ON director_ledger_entries (created_at);

-- Running totals per organizer and currency, maintained in the same transaction as each
-- ledger entry so a balance read never scans the organizer's whole history.
CREATE TABLE organizer_balances (
    organizer_id       text        NOT NULL REFERENCES organizers (id),
    currency           char(3)     NOT NULL,
    tickets            bigint      NOT NULL DEFAULT 0,
    tickets_equivalent bigint      NOT NULL DEFAULT 0,
    assigned_cents     bigint      NOT NULL DEFAULT 0,
    paid_cents         bigint      NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organizer_id, currency)
);
