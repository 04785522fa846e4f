-- Guests of an event and the messages sent to them (seeds/001). The director overview
-- counts both (`guestsByStatus`, `deliveriesByStatus`); the delivery jobs write them.
CREATE TABLE guests (
    id          text        NOT NULL,
    event_id    text        NOT NULL REFERENCES events (id),
    name        text        NOT NULL,
    email       text,
    -- E.164, e.g. +5215550000
    phone       text,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'scanned')),
    -- the entry code printed as a QR in tickets, when the guest has one
    ticket_code text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, id)
);
CREATE INDEX guests_status_idx ON guests (status);

CREATE TABLE deliveries (
    id                  uuid PRIMARY KEY,
    event_id            text        NOT NULL,
    guest_id            text        NOT NULL,
    channel             text        NOT NULL CHECK (channel IN ('whatsapp', 'email')),
    kind                text        NOT NULL CHECK (kind IN ('invitation', 'reminder')),
    template            text,
    status              text        NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sent', 'delivered', 'read', 'failed')),
    -- the provider's id of the sent message; status webhooks find the delivery by it
    provider_message_id text UNIQUE,
    task_id             uuid,
    error               jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    failed_at           timestamptz,
    FOREIGN KEY (event_id, guest_id) REFERENCES guests (event_id, id)
);
CREATE INDEX deliveries_status_idx ON deliveries (status);
CREATE INDEX deliveries_guest_idx ON deliveries (event_id, guest_id);
