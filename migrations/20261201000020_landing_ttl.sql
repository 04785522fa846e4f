-- Landing pages of events (seeds/001, "Jobs nocturnos"): the nightly `landing_ttl` job moves
-- an event's landing `active → archived → expired` by a TTL counted from the event's date.
--
-- The event's date is `ends_at` when known (a festival of several days), else `starts_at`;
-- an event with neither never moves. The TTL is the event's own `landing_ttl_days` when
-- set, else `LANDING_TTL_DEFAULT_DAYS`, clamped to 30–365 either way. Thresholds (DESIGN §4):
--   archived  once date + TTL     has passed (off the public listings, page still served);
--   expired   once date + 2 × TTL has passed (page gone).
ALTER TABLE events
    ADD COLUMN ends_at             timestamptz,
    ADD COLUMN landing_status      text NOT NULL DEFAULT 'active'
                                   CHECK (landing_status IN ('active', 'archived', 'expired')),
    ADD COLUMN landing_ttl_days    integer CHECK (landing_ttl_days BETWEEN 30 AND 365),
    ADD COLUMN landing_status_at   timestamptz,
    ADD CONSTRAINT events_ends_after_start CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at);

-- The job's candidates: events not yet expired, by date. The job filters on
-- `date <= as_of - 30 days` (the smallest TTL) first, which this index answers; expired
-- events, the bulk of the table over time, are not in it.
CREATE INDEX events_landing_due_idx ON events ((COALESCE(ends_at, starts_at)))
    WHERE landing_status <> 'expired';
