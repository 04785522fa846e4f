-- Deliveries (issue 5): the WhatsApp 24 h session window per phone, and the link from a
-- bulk send to the deliveries it created.

-- Free-form WhatsApp messages are only allowed within 24 h of the guest's last inbound
-- message. Keyed by the normalized E.164 number (`+5215550000`).
CREATE TABLE wa_sessions (
    phone           text PRIMARY KEY,
    last_inbound_at timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The bulk task that created a delivery (NULL for single sends). Unique per guest so a
-- bulk task that runs again (retry after a crash) never creates a guest's delivery twice.
ALTER TABLE deliveries ADD COLUMN bulk_task_id uuid;
CREATE UNIQUE INDEX deliveries_bulk_guest_idx ON deliveries (bulk_task_id, guest_id)
    WHERE bulk_task_id IS NOT NULL;
-- The delivery handler finds its row by task.
CREATE INDEX deliveries_task_idx ON deliveries (task_id);
