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
