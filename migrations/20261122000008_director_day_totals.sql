-- The dated overview over all organizers without reading one row per organizer and day
-- (BENCHMARKS.md, "Director reports"): sums per currency and UTC day, and which organizers
-- were active that day as a bitmap, so `activeOrganizers` over any window is the popcount of
-- an OR of bitmaps. A one-year window reads ≈ 11,700 rows of this table (365 days × 32
-- stripes) instead of ≈ 90,000 per-organizer month and day rows.
--
-- An organizer's place is its `ordinal` (a dense number given once, never reused): stripe
-- `ordinal % 32`, then bit `(ordinal / 32) % 256` of chunk `ordinal / 8192`. The 32 stripes
-- spread concurrent writers of one day over 32 rows (like director_debt_day): every entry
-- updates its row, which stays locked until the writing transaction commits, and with
-- consecutive organizers sharing a row, writers of 1,000 organizers on 4 rows cost 38 % of
-- the assignment throughput (BENCHMARKS.md). Fixed-length bitmaps keep bit_or possible.
ALTER TABLE organizers ADD COLUMN ordinal integer GENERATED ALWAYS AS IDENTITY;
ALTER TABLE organizers ADD CONSTRAINT organizers_ordinal_key UNIQUE (ordinal);

CREATE TABLE director_kpi_day (
    currency           text     NOT NULL,
    day                date     NOT NULL,
    chunk              integer  NOT NULL,
    stripe             smallint NOT NULL,
    tickets_equivalent bigint   NOT NULL DEFAULT 0,
    assigned_cents     bigint   NOT NULL DEFAULT 0,
    paid_cents         bigint   NOT NULL DEFAULT 0,
    entries            bigint   NOT NULL DEFAULT 0,
    active             bit(256) NOT NULL,
    PRIMARY KEY (currency, day, chunk, stripe)
) WITH (fillfactor = 80);

-- Fires after director_ledger_rollup (triggers of one event fire in name order), so the
-- organizer lock of migration 6 is still taken first; rows here are locked in key order.
CREATE FUNCTION director_ledger_day_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO director_kpi_day AS t (currency, day, chunk, stripe, tickets_equivalent, assigned_cents,
        paid_cents, entries, active)
    SELECT n.currency::text, (n.created_at AT TIME ZONE 'UTC')::date, o.ordinal / 8192, (o.ordinal % 32)::smallint,
           COALESCE(sum(n.tickets_equivalent) FILTER (WHERE n.entry_type <> 'payment'), 0),
           COALESCE(sum(n.amount_cents) FILTER (WHERE n.entry_type <> 'payment'), 0),
           COALESCE(sum(n.amount_cents) FILTER (WHERE n.entry_type = 'payment'), 0),
           count(*),
           bit_or(set_bit(repeat('0', 256)::bit(256), (o.ordinal / 32) % 256, 1))
    FROM new_rows n JOIN organizers o ON o.id = n.organizer_id
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (currency, day, chunk, stripe) DO UPDATE SET
        tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
        assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
        paid_cents = t.paid_cents + EXCLUDED.paid_cents,
        entries = t.entries + EXCLUDED.entries,
        active = t.active | EXCLUDED.active;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER director_ledger_rollup_day AFTER INSERT ON director_ledger_entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_ledger_day_rollup();

CREATE FUNCTION director_kpi_day_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    TRUNCATE director_kpi_day;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER director_ledger_truncate_day AFTER TRUNCATE ON director_ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION director_kpi_day_truncated();

-- Recomputes the table from the ledger (the tests compare the trigger against it).
CREATE FUNCTION director_kpi_day_rebuild() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    LOCK TABLE director_ledger_entries IN SHARE MODE;
    TRUNCATE director_kpi_day;
    INSERT INTO director_kpi_day (currency, day, chunk, stripe, tickets_equivalent, assigned_cents,
        paid_cents, entries, active)
    SELECT n.currency::text, (n.created_at AT TIME ZONE 'UTC')::date, o.ordinal / 8192, (o.ordinal % 32)::smallint,
           COALESCE(sum(n.tickets_equivalent) FILTER (WHERE n.entry_type <> 'payment'), 0),
           COALESCE(sum(n.amount_cents) FILTER (WHERE n.entry_type <> 'payment'), 0),
           COALESCE(sum(n.amount_cents) FILTER (WHERE n.entry_type = 'payment'), 0),
           count(*),
           bit_or(set_bit(repeat('0', 256)::bit(256), (o.ordinal / 32) % 256, 1))
    FROM director_ledger_entries n JOIN organizers o ON o.id = n.organizer_id
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
END
$fn$;

SELECT director_kpi_day_rebuild();
