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

-- Landing lifecycle (landing_ttl, seeds/001): a past festival whose landing the first nightly
-- run archives (ended 45 days ago, default TTL 30) and one it expires (ended 90 days ago).
INSERT INTO events (id, organizer_id, name, type, starts_at, ends_at) VALUES
    ('ev_past',    'org_demo', 'Demo Fest 2025',     'standard', now() - interval '47 days', now() - interval '45 days'),
    ('ev_old',     'org_acme', 'Acme Fest 2025',     'standard', now() - interval '91 days', now() - interval '90 days')
ON CONFLICT DO NOTHING;
UPDATE events SET starts_at = now() + interval '30 days' WHERE id = 'ev_demo' AND starts_at IS NULL;

-- Seats and reservations (reservation_release, seeds/002): Ana's hold has expired (the next
-- run frees A-1 and A-2), Beto's runs 15 more minutes, Caro's is paid.
INSERT INTO units (id, event_id, area, label, status) VALUES
    ('ev_demo-A-1', 'ev_demo', 'General', 'A-1', 'reserved'),
    ('ev_demo-A-2', 'ev_demo', 'General', 'A-2', 'reserved'),
    ('ev_demo-A-3', 'ev_demo', 'General', 'A-3', 'reserved'),
    ('ev_demo-A-4', 'ev_demo', 'General', 'A-4', 'sold'),
    ('ev_demo-A-5', 'ev_demo', 'General', 'A-5', 'available')
ON CONFLICT DO NOTHING;
INSERT INTO reservations (id, event_id, user_id, status, hold_expires_at) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'ev_demo', 'ana',  'pending',   now() - interval '5 minutes'),
    ('d0000000-0000-4000-8000-000000000002', 'ev_demo', 'beto', 'pending',   now() + interval '15 minutes'),
    ('d0000000-0000-4000-8000-000000000003', 'ev_demo', 'caro', 'confirmed', now() - interval '1 day')
ON CONFLICT DO NOTHING;
INSERT INTO reservation_units (reservation_id, unit_id) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'ev_demo-A-1'),
    ('d0000000-0000-4000-8000-000000000001', 'ev_demo-A-2'),
    ('d0000000-0000-4000-8000-000000000002', 'ev_demo-A-3'),
    ('d0000000-0000-4000-8000-000000000003', 'ev_demo-A-4')
ON CONFLICT DO NOTHING;

-- Redemptions and their audit log (sql_maintenance, seeds/004): one code expired an hour ago
-- (expire_old_redemptions expires it), one still valid, one used; and an audit row older than
-- 90 days (cleanup_redemption_audit_log deletes it).
INSERT INTO user_redemptions (redemption_id, user_id, offer_id, lumis_spent, redemption_code,
                              redemption_status, code_expires_at) VALUES
    ('e0000000-0000-4000-8000-000000000001', 1, 'e1000000-0000-4000-8000-000000000001', 150, 'DEMO-EXPIRED', 'pending',   now() - interval '1 hour'),
    ('e0000000-0000-4000-8000-000000000002', 2, 'e1000000-0000-4000-8000-000000000001', 150, 'DEMO-VALID',   'pending',   now() + interval '2 days'),
    ('e0000000-0000-4000-8000-000000000003', 3, 'e1000000-0000-4000-8000-000000000002', 300, 'DEMO-USED',    'confirmed', now() - interval '1 day')
ON CONFLICT DO NOTHING;
INSERT INTO redemption_audit_log (redemption_id, action, actor_type, actor_id, created_at)
SELECT 'e0000000-0000-4000-8000-000000000003', 'validated', 'merchant', 'demo-merchant', now() - interval '120 days'
WHERE NOT EXISTS (SELECT 1 FROM redemption_audit_log WHERE actor_id = 'demo-merchant');
