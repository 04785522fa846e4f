-- Reward redemptions and their audit log (seeds/004), with the maintenance functions its
-- "Cron Jobs Recomendados" run, called by the `sql_maintenance` job from an allow-list.
-- The seed puts them in a `rewards` schema; here they live in the application's schema
-- (every test runs in its own schema through search_path, which a fixed schema name would
-- escape). Offers and merchants are left out: the jobs do not read them.
CREATE TABLE user_redemptions (
    redemption_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                  integer     NOT NULL,
    offer_id                 uuid        NOT NULL,
    lumis_spent              integer     NOT NULL CHECK (lumis_spent >= 0),
    redemption_code          text        NOT NULL UNIQUE,
    qr_image_url             text,
    qr_landing_url           text,
    redemption_status        text        NOT NULL DEFAULT 'pending'
                             CHECK (redemption_status IN ('pending', 'confirmed', 'cancelled', 'expired')),
    validated_by_merchant_id uuid,
    validated_at             timestamptz,
    code_expires_at          timestamptz NOT NULL,
    created_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_redemptions_user ON user_redemptions (user_id);
CREATE INDEX idx_redemptions_offer ON user_redemptions (offer_id);
CREATE INDEX idx_redemptions_created ON user_redemptions (created_at);
-- expire_old_redemptions() reads only pending codes, by expiry.
CREATE INDEX idx_redemptions_pending_expiry ON user_redemptions (code_expires_at)
    WHERE redemption_status = 'pending';

CREATE TABLE redemption_audit_log (
    log_id        bigserial PRIMARY KEY,
    redemption_id uuid,
    action        text        NOT NULL
                  CHECK (action IN ('created', 'validated', 'confirmed', 'cancelled', 'expired', 'deleted')),
    actor_type    text        NOT NULL CHECK (actor_type IN ('user', 'merchant', 'system')),
    actor_id      text,
    ip_address    inet,
    user_agent    text,
    metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_audit_redemption ON redemption_audit_log (redemption_id);
CREATE INDEX idx_audit_action ON redemption_audit_log (action);
CREATE INDEX idx_audit_created ON redemption_audit_log (created_at);

-- The seed's trg_audit_redemption_changes: every insert, status change and delete of a
-- redemption is logged (a change made by a maintenance function as actor `system`).
CREATE FUNCTION audit_redemption_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO redemption_audit_log (redemption_id, action, actor_type, actor_id)
        VALUES (NEW.redemption_id, 'created', 'user', NEW.user_id::text);
    ELSIF TG_OP = 'UPDATE' AND NEW.redemption_status IS DISTINCT FROM OLD.redemption_status THEN
        INSERT INTO redemption_audit_log (redemption_id, action, actor_type, metadata)
        VALUES (NEW.redemption_id, NEW.redemption_status,
                CASE WHEN NEW.redemption_status = 'expired' THEN 'system' ELSE 'user' END,
                jsonb_build_object('from', OLD.redemption_status));
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO redemption_audit_log (redemption_id, action, actor_type)
        VALUES (OLD.redemption_id, 'deleted', 'system');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trg_audit_redemption_changes
    AFTER INSERT OR UPDATE OR DELETE ON user_redemptions
    FOR EACH ROW EXECUTE FUNCTION audit_redemption_change();

-- Seed 004, hourly: pending redemptions whose code expired become `expired`. Returns the
-- number of redemptions changed.
CREATE FUNCTION expire_old_redemptions() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    UPDATE user_redemptions SET redemption_status = 'expired'
    WHERE redemption_status = 'pending' AND code_expires_at < now();
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END $$;

-- Seed 004, weekly: audit rows older than `retention_days` (the seed keeps 90) are deleted.
-- Returns the number of rows deleted.
CREATE FUNCTION cleanup_redemption_audit_log(retention_days integer DEFAULT 90)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    deleted integer;
BEGIN
    IF retention_days IS NULL OR retention_days < 1 THEN
        RAISE EXCEPTION 'retention_days must be at least 1, got %', retention_days;
    END IF;
    DELETE FROM redemption_audit_log
    WHERE created_at < now() - make_interval(days => retention_days);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END $$;
