-- Reservations of seats (seeds/002, "Sistema de Reservaciones", "Timeout de reservas
-- pendientes"), kept small: the units of an event, the reservations holding them, and which
-- reservation holds which units. A pending reservation holds its units until
-- `hold_expires_at`; the `reservation_release` job expires the ones past it and frees their
-- units.
CREATE TABLE units (
    id          text PRIMARY KEY,
    event_id    text        NOT NULL REFERENCES events (id),
    area        text        NOT NULL DEFAULT 'general',
    label       text        NOT NULL,
    status      text        NOT NULL DEFAULT 'available'
                CHECK (status IN ('available', 'reserved', 'sold')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX units_event_idx ON units (event_id, status);

CREATE TABLE reservations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        text        NOT NULL REFERENCES events (id),
    user_id         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'confirmed', 'cancelled', 'expired')),
    hold_expires_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The release job's scan: only pending holds, by expiry.
CREATE INDEX reservations_hold_idx ON reservations (hold_expires_at) WHERE status = 'pending';

CREATE TABLE reservation_units (
    reservation_id uuid NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    unit_id        text NOT NULL REFERENCES units (id),
    PRIMARY KEY (reservation_id, unit_id)
);
CREATE INDEX reservation_units_unit_idx ON reservation_units (unit_id);
