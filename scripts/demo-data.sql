-- Demo rows for local development (scripts/dev.sh loads this after the migrations).
-- Idempotent: running it again changes nothing.
INSERT INTO organizers (id, name) VALUES
    ('org_demo', 'Demo Organizer'),
    ('org_acme', 'Acme Eventos')
ON CONFLICT DO NOTHING;

INSERT INTO events (id, organizer_id, name, type) VALUES
    ('ev_demo',    'org_demo', 'Demo Fest',          'standard'),
    ('ev_premium', 'org_demo', 'Demo Premium Night', 'premium'),
    ('ev_acme',    'org_acme', 'Acme Fest',          'standard')
ON CONFLICT DO NOTHING;

-- Guests for the delivery smoke test of seeds/001 (`/events/ev_demo/guests/g1/send`).
INSERT INTO guests (id, event_id, name, email, phone, status, ticket_code) VALUES
    ('g1', 'ev_demo', 'Ana Demo', 'ana@example.com', '+5215550000', 'confirmed', 'TKT-DEMO-0001'),
    ('g2', 'ev_demo', 'Beto Demo', 'beto@example.com', '+5215550001', 'pending', NULL)
ON CONFLICT DO NOTHING;
