-- Guests and deliveries counted by status per UTC day of creation, kept by statement-level
-- triggers in the writing transaction (like the ledger roll-ups of migration 6). The
-- overview's guestsByStatus / deliveriesByStatus over all events read a few thousand of these
-- rows instead of counting every guest and delivery (200,000 + 300,000 index entries on the
-- benchmark data set: 30–40 ms each, the slowest part of the undated overview).
--
-- A status change moves one count from (day, old status) to (day, new status). Each
-- statement's rows are aggregated first, so a batch of sends is one upsert per (day, status)
-- touched, not one per delivery. Each statement locks its rows in key order, so two
-- single-statement writers never deadlock on them. Rows whose count falls to 0 stay
-- (readers skip them).
CREATE TABLE director_status_day (
    source text   NOT NULL CHECK (source IN ('guests', 'deliveries')),
    day    date   NOT NULL,
    status text   NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (source, day, status)
) WITH (fillfactor = 70);

-- Applies the net count changes of one statement: rows in `new_rows` count +1, rows in
-- `old_rows` −1 (an UPDATE has both; a row whose status and creation day did not change
-- cancels out, so updates of other columns write nothing).
CREATE FUNCTION director_status_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO director_status_day AS s (source, day, status, n)
        SELECT TG_TABLE_NAME, (created_at AT TIME ZONE 'UTC')::date, status, count(*)
        FROM new_rows GROUP BY 2, 3 ORDER BY 2, 3
        ON CONFLICT (source, day, status) DO UPDATE SET n = s.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO director_status_day AS s (source, day, status, n)
        SELECT TG_TABLE_NAME, (created_at AT TIME ZONE 'UTC')::date, status, -count(*)
        FROM old_rows GROUP BY 2, 3 ORDER BY 2, 3
        ON CONFLICT (source, day, status) DO UPDATE SET n = s.n + EXCLUDED.n;
    ELSE
        INSERT INTO director_status_day AS s (source, day, status, n)
        SELECT TG_TABLE_NAME, day, status, sum(delta)
        FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, status, 1 AS delta FROM new_rows
              UNION ALL
              SELECT (created_at AT TIME ZONE 'UTC')::date, status, -1 FROM old_rows) d
        GROUP BY day, status HAVING sum(delta) <> 0 ORDER BY day, status
        ON CONFLICT (source, day, status) DO UPDATE SET n = s.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION director_status_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM director_status_day WHERE source = TG_TABLE_NAME;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER guests_status_insert AFTER INSERT ON guests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_status_count();
CREATE TRIGGER guests_status_update AFTER UPDATE ON guests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION director_status_count();
CREATE TRIGGER guests_status_delete AFTER DELETE ON guests
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION director_status_count();
CREATE TRIGGER guests_status_truncate AFTER TRUNCATE ON guests
    FOR EACH STATEMENT EXECUTE FUNCTION director_status_truncated();

CREATE TRIGGER deliveries_status_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_status_count();
CREATE TRIGGER deliveries_status_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION director_status_count();
CREATE TRIGGER deliveries_status_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION director_status_count();
CREATE TRIGGER deliveries_status_truncate AFTER TRUNCATE ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION director_status_truncated();

-- Recomputes every count from the two tables (what the tests compare the triggers against).
CREATE FUNCTION director_status_counts_rebuild() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    LOCK TABLE guests, deliveries IN SHARE MODE;
    DELETE FROM director_status_day;
    INSERT INTO director_status_day (source, day, status, n)
    SELECT 'guests', (created_at AT TIME ZONE 'UTC')::date, status, count(*) FROM guests GROUP BY 2, 3
    UNION ALL
    SELECT 'deliveries', (created_at AT TIME ZONE 'UTC')::date, status, count(*) FROM deliveries GROUP BY 2, 3;
END
$fn$;

SELECT director_status_counts_rebuild();

-- The indexes that served the old way of counting (migrations 2, 5 and 6) are read by no
-- query any more: the overview counts one event's (or one organizer's events') rows through
-- the event index, and everything else from director_status_day. Each cost every delivery
-- insert and status change an index entry (status is in all of them, so no update is HOT).
DROP INDEX guests_status_idx;
DROP INDEX guests_created_idx;
DROP INDEX deliveries_status_idx;
DROP INDEX deliveries_created_idx;

-- An organizer filter reaches guests and deliveries through that organizer's events.
CREATE INDEX events_organizer_idx ON events (organizer_id);
