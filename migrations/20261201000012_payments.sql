-- Payments (issue 12): one row per intent created at a provider, and every webhook event
-- received, stored verbatim before it is applied (unique per provider and event id, so a
-- redelivered event is recognised and applied once).
CREATE TABLE payments (
    -- The id of the `payment_intent` task that created it.
    id            uuid PRIMARY KEY,
    requester     text NOT NULL,
    provider      text NOT NULL CHECK (provider IN ('stripe', 'conekta', 'wompi', 'mock')),
    provider_ref  text NOT NULL,
    organizer_id  text,
    amount_cents  bigint NOT NULL CHECK (amount_cents > 0),
    currency      text NOT NULL,
    status        text NOT NULL CHECK (status IN
                    ('pending', 'processing', 'succeeded', 'failed', 'canceled', 'refunded')),
    description   text,
    metadata      jsonb NOT NULL DEFAULT '{}',
    -- What a client needs to pay (client secret, checkout link).
    client        jsonb NOT NULL DEFAULT '{}',
    -- The provider's object as it last answered.
    raw           jsonb NOT NULL DEFAULT '{}',
    -- The ledger entry written when it succeeded (organizer payments only).
    ledger_entry_id uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_ref)
);
CREATE INDEX payments_requester_idx ON payments (requester, created_at DESC);

CREATE TABLE payment_events (
    provider      text NOT NULL,
    event_id      text NOT NULL,
    kind          text NOT NULL,
    provider_ref  text NOT NULL,
    status        text,
    body          bytea NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- Set when the `payment_webhook` task applied it: the payment, and whether it moved it.
    payment_id    uuid REFERENCES payments (id),
    moved         boolean,
    applied_at    timestamptz,
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX payment_events_payment_idx ON payment_events (payment_id, received_at);
