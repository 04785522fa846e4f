-- Director reports without scanning the ledger (BENCHMARKS.md, "Director reports"): roll-up
-- tables maintained by a statement-level trigger on director_ledger_entries, so every entry
-- moves them in its own transaction (whoever inserts it: ledger::record, a seed, a bulk load)
-- and they never drift from the ledger. Reports read these tables, not the raw ledger and
-- not the materialized views, so they are real time; the three KPI views become small
-- per-organizer snapshots of them, which keeps `REFRESH … CONCURRENTLY` cheap.
--
-- Every roll-up row is updated in place many times: fillfactor 80 leaves room on the page
-- for those updates to be HOT (no index writes).
--
-- Concurrency: the trigger first upserts director_kpi_org_total for every (organizer,
-- currency) of the statement, in key order. That row lock serializes writers of one
-- organizer and currency (ledger::record already serializes them on organizer_balances), so
-- the FIFO step sees a stable history. Every other row is keyed by the organizer except
-- director_debt_day, which is shared across organizers (32 stripes per currency and day)
-- and always locked in key order.

-- Per organizer and currency: totals, last activity, and the FIFO head (the oldest
-- assignment that still has an unpaid remainder; NULL when everything is paid).
CREATE TABLE director_kpi_org_total (
    organizer_id       text        NOT NULL,
    currency           text        NOT NULL,
    tickets            bigint      NOT NULL DEFAULT 0,
    tickets_equivalent bigint      NOT NULL DEFAULT 0,
    assigned_cents     bigint      NOT NULL DEFAULT 0,
    paid_cents         bigint      NOT NULL DEFAULT 0,
    assignments        bigint      NOT NULL DEFAULT 0,
    entries            bigint      NOT NULL DEFAULT 0,
    last_at            timestamptz,
    fifo_head_at       timestamptz,
    fifo_head_id       uuid,
    -- sum of the assignments before the head (all fully paid)
    fifo_head_cum      bigint,
    PRIMARY KEY (organizer_id, currency)
) WITH (fillfactor = 80);

-- Per organizer, currency and UTC day (every entry type).
CREATE TABLE director_kpi_org_day (
    organizer_id       text        NOT NULL,
    currency           text        NOT NULL,
    day                date        NOT NULL,
    tickets            bigint      NOT NULL DEFAULT 0,
    tickets_equivalent bigint      NOT NULL DEFAULT 0,
    assigned_cents     bigint      NOT NULL DEFAULT 0,
    paid_cents         bigint      NOT NULL DEFAULT 0,
    entries            bigint      NOT NULL DEFAULT 0,
    last_at            timestamptz,
    PRIMARY KEY (organizer_id, currency, day)
) WITH (fillfactor = 80);
-- Dated reports over all organizers read a day range. Deliberately not a covering index
-- (INCLUDE of the sums): the trigger updates the sums on every entry, and an index holding
-- them makes every such update non-HOT (a new entry in each index). Rows of one day are
-- written on that day, so the heap is in day order anyway (the rebuild writes it so too).
CREATE INDEX director_kpi_org_day_window ON director_kpi_org_day (currency, day);

-- The same per UTC month (first day of the month): a long date window reads whole months here
-- and only its partial months from director_kpi_org_day.
CREATE TABLE director_kpi_org_month (
    organizer_id       text        NOT NULL,
    currency           text        NOT NULL,
    month              date        NOT NULL,
    tickets            bigint      NOT NULL DEFAULT 0,
    tickets_equivalent bigint      NOT NULL DEFAULT 0,
    assigned_cents     bigint      NOT NULL DEFAULT 0,
    paid_cents         bigint      NOT NULL DEFAULT 0,
    entries            bigint      NOT NULL DEFAULT 0,
    last_at            timestamptz,
    PRIMARY KEY (organizer_id, currency, month)
) WITH (fillfactor = 80);
CREATE INDEX director_kpi_org_month_window ON director_kpi_org_month (currency, month);

-- Assignments per event (''= none), organizer, currency and UTC day.
CREATE TABLE director_kpi_event_day (
    event_id           text        NOT NULL,
    organizer_id       text        NOT NULL,
    currency           text        NOT NULL,
    day                date        NOT NULL,
    tickets            bigint      NOT NULL DEFAULT 0,
    tickets_equivalent bigint      NOT NULL DEFAULT 0,
    assigned_cents     bigint      NOT NULL DEFAULT 0,
    entries            bigint      NOT NULL DEFAULT 0,
    last_at            timestamptz,
    PRIMARY KEY (event_id, organizer_id, currency, day)
) WITH (fillfactor = 80);
CREATE INDEX director_kpi_event_day_window ON director_kpi_event_day (currency, day);
CREATE INDEX director_kpi_event_day_org ON director_kpi_event_day (organizer_id, currency, day);

-- Assignments per event, organizer and currency, all time.
CREATE TABLE director_kpi_event_total (
    event_id           text        NOT NULL,
    organizer_id       text        NOT NULL,
    currency           text        NOT NULL,
    tickets            bigint      NOT NULL DEFAULT 0,
    tickets_equivalent bigint      NOT NULL DEFAULT 0,
    assigned_cents     bigint      NOT NULL DEFAULT 0,
    entries            bigint      NOT NULL DEFAULT 0,
    last_at            timestamptz,
    PRIMARY KEY (event_id, organizer_id, currency)
) WITH (fillfactor = 80);
CREATE INDEX director_kpi_event_total_org ON director_kpi_event_total (organizer_id, currency);

-- Unpaid remainders (FIFO: payments settle the oldest assignments of the organizer and
-- currency first) summed per currency and the UTC day of the assignment; `unpaid_count` =
-- assignments with a remainder. Striped by organizer so concurrent writers of different
-- organizers rarely wait on the same row; debt aging over every organizer sums these rows.
CREATE TABLE director_debt_day (
    currency     text     NOT NULL,
    day          date     NOT NULL,
    stripe       smallint NOT NULL,
    unpaid_cents bigint   NOT NULL DEFAULT 0,
    unpaid_count bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (currency, day, stripe)
) WITH (fillfactor = 80);

CREATE FUNCTION director_ledger_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    n   bigint;
    r   record;
    tot record;
    pay boolean;
BEGIN
    SELECT count(*) INTO n FROM new_rows;
    IF n = 0 THEN
        RETURN NULL;
    ELSIF n = 1 THEN
        -- One entry (what ledger::record writes): plain upserts of its values, and for an
        -- assignment after the FIFO head (the usual case while the organizer owes) its whole
        -- amount is unpaid. The general path below costs several times more CPU per entry.
        SELECT * INTO r FROM new_rows;
        pay := r.entry_type = 'payment';
        INSERT INTO director_kpi_org_total AS t (organizer_id, currency, tickets, tickets_equivalent,
            assigned_cents, paid_cents, assignments, entries, last_at)
        VALUES (r.organizer_id, r.currency::text,
                CASE WHEN pay THEN 0 ELSE r.tickets END, CASE WHEN pay THEN 0 ELSE r.tickets_equivalent END,
                CASE WHEN pay THEN 0 ELSE r.amount_cents END, CASE WHEN pay THEN r.amount_cents ELSE 0 END,
                CASE WHEN pay THEN 0 ELSE 1 END, 1, r.created_at)
        ON CONFLICT (organizer_id, currency) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            paid_cents = t.paid_cents + EXCLUDED.paid_cents,
            assignments = t.assignments + EXCLUDED.assignments,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at)
        RETURNING t.fifo_head_at, t.fifo_head_id INTO tot;
        INSERT INTO director_kpi_org_day AS t (organizer_id, currency, day, tickets, tickets_equivalent,
            assigned_cents, paid_cents, entries, last_at)
        VALUES (r.organizer_id, r.currency::text, (r.created_at AT TIME ZONE 'UTC')::date,
                CASE WHEN pay THEN 0 ELSE r.tickets END, CASE WHEN pay THEN 0 ELSE r.tickets_equivalent END,
                CASE WHEN pay THEN 0 ELSE r.amount_cents END, CASE WHEN pay THEN r.amount_cents ELSE 0 END,
                1, r.created_at)
        ON CONFLICT (organizer_id, currency, day) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            paid_cents = t.paid_cents + EXCLUDED.paid_cents,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at);
        INSERT INTO director_kpi_org_month AS t (organizer_id, currency, month, tickets, tickets_equivalent,
            assigned_cents, paid_cents, entries, last_at)
        VALUES (r.organizer_id, r.currency::text, date_trunc('month', r.created_at AT TIME ZONE 'UTC')::date,
                CASE WHEN pay THEN 0 ELSE r.tickets END, CASE WHEN pay THEN 0 ELSE r.tickets_equivalent END,
                CASE WHEN pay THEN 0 ELSE r.amount_cents END, CASE WHEN pay THEN r.amount_cents ELSE 0 END,
                1, r.created_at)
        ON CONFLICT (organizer_id, currency, month) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            paid_cents = t.paid_cents + EXCLUDED.paid_cents,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at);
        IF pay THEN
            IF tot.fifo_head_at IS NULL THEN
                RETURN NULL; -- nothing unpaid: the payment only adds credit
            END IF;
        ELSE
            INSERT INTO director_kpi_event_day AS t (event_id, organizer_id, currency, day, tickets,
                tickets_equivalent, assigned_cents, entries, last_at)
            VALUES (COALESCE(r.event_id, ''), r.organizer_id, r.currency::text, (r.created_at AT TIME ZONE 'UTC')::date,
                    r.tickets, r.tickets_equivalent, r.amount_cents, 1, r.created_at)
            ON CONFLICT (event_id, organizer_id, currency, day) DO UPDATE SET
                tickets = t.tickets + EXCLUDED.tickets,
                tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
                assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
                entries = t.entries + EXCLUDED.entries,
                last_at = GREATEST(t.last_at, EXCLUDED.last_at);
            INSERT INTO director_kpi_event_total AS t (event_id, organizer_id, currency, tickets,
                tickets_equivalent, assigned_cents, entries, last_at)
            VALUES (COALESCE(r.event_id, ''), r.organizer_id, r.currency::text,
                    r.tickets, r.tickets_equivalent, r.amount_cents, 1, r.created_at)
            ON CONFLICT (event_id, organizer_id, currency) DO UPDATE SET
                tickets = t.tickets + EXCLUDED.tickets,
                tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
                assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
                entries = t.entries + EXCLUDED.entries,
                last_at = GREATEST(t.last_at, EXCLUDED.last_at);
            IF tot.fifo_head_at IS NOT NULL AND (r.created_at, r.id) > (tot.fifo_head_at, tot.fifo_head_id) THEN
                -- After the head: nothing before it moves, it is unpaid in full.
                IF r.amount_cents > 0 THEN
                    INSERT INTO director_debt_day AS d (currency, day, stripe, unpaid_cents, unpaid_count)
                    VALUES (r.currency::text, (r.created_at AT TIME ZONE 'UTC')::date,
                            (hashtext(r.organizer_id) & 31)::smallint, r.amount_cents, 1)
                    ON CONFLICT (currency, day, stripe) DO UPDATE SET
                        unpaid_cents = d.unpaid_cents + EXCLUDED.unpaid_cents,
                        unpaid_count = d.unpaid_count + EXCLUDED.unpaid_count;
                END IF;
                RETURN NULL;
            END IF;
        END IF;
    ELSE
        -- Organizer totals first (the per organizer and currency lock, see above).
        INSERT INTO director_kpi_org_total AS t (organizer_id, currency, tickets, tickets_equivalent,
            assigned_cents, paid_cents, assignments, entries, last_at)
        SELECT organizer_id, currency::text,
               COALESCE(sum(tickets) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(tickets_equivalent) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0),
               count(*) FILTER (WHERE entry_type <> 'payment'), count(*), max(created_at)
        FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (organizer_id, currency) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            paid_cents = t.paid_cents + EXCLUDED.paid_cents,
            assignments = t.assignments + EXCLUDED.assignments,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at);

        INSERT INTO director_kpi_org_day AS t (organizer_id, currency, day, tickets, tickets_equivalent,
            assigned_cents, paid_cents, entries, last_at)
        SELECT organizer_id, currency::text, (created_at AT TIME ZONE 'UTC')::date,
               COALESCE(sum(tickets) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(tickets_equivalent) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0),
               count(*), max(created_at)
        FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (organizer_id, currency, day) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            paid_cents = t.paid_cents + EXCLUDED.paid_cents,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at);

        INSERT INTO director_kpi_org_month AS t (organizer_id, currency, month, tickets, tickets_equivalent,
            assigned_cents, paid_cents, entries, last_at)
        SELECT organizer_id, currency::text, date_trunc('month', created_at AT TIME ZONE 'UTC')::date,
               COALESCE(sum(tickets) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(tickets_equivalent) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0),
               COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0),
               count(*), max(created_at)
        FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (organizer_id, currency, month) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            paid_cents = t.paid_cents + EXCLUDED.paid_cents,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at);

        INSERT INTO director_kpi_event_day AS t (event_id, organizer_id, currency, day, tickets,
            tickets_equivalent, assigned_cents, entries, last_at)
        SELECT COALESCE(event_id, ''), organizer_id, currency::text, (created_at AT TIME ZONE 'UTC')::date,
               sum(tickets), sum(tickets_equivalent), sum(amount_cents), count(*), max(created_at)
        FROM new_rows WHERE entry_type <> 'payment' GROUP BY 1, 2, 3, 4 ORDER BY 2, 3, 1, 4
        ON CONFLICT (event_id, organizer_id, currency, day) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at);

        INSERT INTO director_kpi_event_total AS t (event_id, organizer_id, currency, tickets,
            tickets_equivalent, assigned_cents, entries, last_at)
        SELECT COALESCE(event_id, ''), organizer_id, currency::text,
               sum(tickets), sum(tickets_equivalent), sum(amount_cents), count(*), max(created_at)
        FROM new_rows WHERE entry_type <> 'payment' GROUP BY 1, 2, 3 ORDER BY 2, 3, 1
        ON CONFLICT (event_id, organizer_id, currency) DO UPDATE SET
            tickets = t.tickets + EXCLUDED.tickets,
            tickets_equivalent = t.tickets_equivalent + EXCLUDED.tickets_equivalent,
            assigned_cents = t.assigned_cents + EXCLUDED.assigned_cents,
            entries = t.entries + EXCLUDED.entries,
            last_at = GREATEST(t.last_at, EXCLUDED.last_at);

    END IF;

    -- FIFO remainders. An assignment's remainder is LEAST(amount, GREATEST(0, cum − paid)),
    -- cum = running sum of the organizer's assignments in (created_at, id) order. Only the
    -- assignments from `start` on can change: with payments in the statement, from the old
    -- head (or the first new assignment, if older); without, from the first new assignment
    -- (nothing before it moves, and the paid total did not change) — usually that new
    -- assignment alone. Old and new remainders of those assignments are computed together;
    -- their difference moves director_debt_day.
    -- Payments alone (the common case: one payment) walk from the head one assignment at a
    -- time and stop at the new head, so a payment costs what it pays off, not the
    -- organizer's whole unpaid tail. Anything else reads the suffix from `start` to the end.
    WITH RECURSIVE aff AS (
        SELECT organizer_id AS org, currency::text AS cur,
               COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0) AS new_paid
        FROM new_rows GROUP BY 1, 2),
    first_new AS (
        SELECT DISTINCT ON (organizer_id, currency) organizer_id AS org, currency::text AS cur, created_at, id
        FROM new_rows WHERE entry_type <> 'payment'
        ORDER BY organizer_id, currency, created_at, id),
    st0 AS (
        SELECT a.org, a.cur, a.new_paid, t.assigned_cents AS a_new, t.paid_cents AS p_new,
               t.fifo_head_at, t.fifo_head_id, t.fifo_head_cum,
               a.new_paid > 0 AND t.fifo_head_at IS NOT NULL
                   AND (f.id IS NULL OR (t.fifo_head_at, t.fifo_head_id) < (f.created_at, f.id)) AS from_head,
               f.id IS NULL AND a.new_paid > 0 AND t.fifo_head_at IS NOT NULL AS pay_only,
               f.created_at AS first_at, f.id AS first_id
        FROM aff a
        JOIN director_kpi_org_total t ON t.organizer_id = a.org AND t.currency = a.cur
        LEFT JOIN first_new f ON f.org = a.org AND f.cur = a.cur),
    st AS (
        SELECT *, CASE WHEN from_head THEN fifo_head_at ELSE first_at END AS start_at,
                  CASE WHEN from_head THEN fifo_head_id ELSE first_id END AS start_id
        FROM st0),
    walk AS (
        SELECT s.org, s.cur, x.id, x.created_at, x.amount_cents, x.amount_cents AS run
        FROM st s
        CROSS JOIN LATERAL (
            SELECT id, created_at, amount_cents FROM director_ledger_entries x
            WHERE x.organizer_id = s.org AND x.currency = s.cur::char(3) AND x.entry_type <> 'payment'
              AND (x.created_at, x.id) >= (s.start_at, s.start_id)
            ORDER BY x.created_at, x.id LIMIT 1) x
        WHERE s.pay_only
        UNION ALL
        SELECT w.org, w.cur, x.id, x.created_at, x.amount_cents, w.run + x.amount_cents
        FROM walk w
        JOIN st s ON s.org = w.org AND s.cur = w.cur
        CROSS JOIN LATERAL (
            SELECT id, created_at, amount_cents FROM director_ledger_entries x
            WHERE x.organizer_id = w.org AND x.currency = w.cur::char(3) AND x.entry_type <> 'payment'
              AND (x.created_at, x.id) > (w.created_at, w.id)
            ORDER BY x.created_at, x.id LIMIT 1) x
        WHERE s.fifo_head_cum + w.run <= s.p_new),
    suffix AS (
        SELECT s.org, s.cur, s.a_new, l.id, l.created_at, l.amount_cents,
               -- Uncorrelated IN: one hashed subplan over new_rows (a transition table has no
               -- index; a correlated EXISTS scanned it once per suffix row, quadratic in bulk).
               l.id IN (SELECT n.id FROM new_rows n) AS is_new
        FROM st s
        CROSS JOIN LATERAL (
            SELECT x.id, x.created_at, x.amount_cents FROM director_ledger_entries x
            WHERE x.organizer_id = s.org AND x.currency = s.cur::char(3)
              AND x.entry_type <> 'payment' AND (x.created_at, x.id) >= (s.start_at, s.start_id)) l
        WHERE s.start_id IS NOT NULL AND NOT s.pay_only),
    w AS (
        SELECT *,
               sum(amount_cents) OVER (PARTITION BY org, cur ORDER BY created_at, id) AS run,
               sum(amount_cents) OVER (PARTITION BY org, cur) AS suffix_total,
               sum(CASE WHEN is_new THEN amount_cents ELSE 0 END)
                   OVER (PARTITION BY org, cur ORDER BY created_at, id) AS run_new
        FROM suffix),
    cums AS (
        -- cum_new: running sum now; cum_old: before this statement's assignments.
        SELECT org, cur, id, created_at, amount_cents, is_new,
               a_new - suffix_total + run AS cum_new, a_new - suffix_total + run - run_new AS cum_old
        FROM w
        UNION ALL
        SELECT w.org, w.cur, w.id, w.created_at, w.amount_cents, false,
               s.fifo_head_cum + w.run, s.fifo_head_cum + w.run
        FROM walk w JOIN st s ON s.org = w.org AND s.cur = w.cur),
    r AS MATERIALIZED (
        SELECT c.org, c.cur, c.id, c.created_at, c.cum_new - c.amount_cents AS cum_before,
               LEAST(c.amount_cents, GREATEST(0, c.cum_new - s.p_new)) AS rem_new,
               CASE WHEN c.is_new THEN 0
                    ELSE LEAST(c.amount_cents, GREATEST(0, c.cum_old - (s.p_new - s.new_paid)))
               END AS rem_old
        FROM cums c JOIN st s ON s.org = c.org AND s.cur = c.cur),
    heads AS (
        SELECT DISTINCT ON (org, cur) org, cur, created_at, id, cum_before
        FROM r WHERE rem_new > 0 ORDER BY org, cur, created_at, id),
    moved_heads AS (
        -- An old head before `start` stays the head (nothing before `start` changed).
        UPDATE director_kpi_org_total t
        SET fifo_head_at = h.created_at, fifo_head_id = h.id, fifo_head_cum = h.cum_before
        FROM st LEFT JOIN heads h ON h.org = st.org AND h.cur = st.cur
        WHERE t.organizer_id = st.org AND t.currency = st.cur AND st.start_id IS NOT NULL
          AND NOT (st.fifo_head_at IS NOT NULL AND (st.fifo_head_at, st.fifo_head_id) < (st.start_at, st.start_id))
        RETURNING 1)
    INSERT INTO director_debt_day AS d (currency, day, stripe, unpaid_cents, unpaid_count)
    SELECT cur, (created_at AT TIME ZONE 'UTC')::date, (hashtext(org) & 31)::smallint,
           sum(rem_new - rem_old), sum((rem_new > 0)::int - (rem_old > 0)::int)
    FROM r GROUP BY 1, 2, 3
    HAVING sum(rem_new - rem_old) <> 0 OR sum((rem_new > 0)::int - (rem_old > 0)::int) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (currency, day, stripe) DO UPDATE SET
        unpaid_cents = d.unpaid_cents + EXCLUDED.unpaid_cents,
        unpaid_count = d.unpaid_count + EXCLUDED.unpaid_count;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER director_ledger_rollup AFTER INSERT ON director_ledger_entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_ledger_rollup();

-- The roll-ups are sums over an append-only ledger: an UPDATE or DELETE would make them
-- drift, so refuse them (correct with a new entry instead). TRUNCATE empties the roll-ups too.
CREATE FUNCTION director_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE director_kpi_org_total, director_kpi_org_day, director_kpi_org_month, director_kpi_event_day,
                 director_kpi_event_total, director_debt_day;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'director_ledger_entries is append-only (% refused): the director roll-ups are sums of it', TG_OP;
END
$fn$;
CREATE TRIGGER director_ledger_append_only BEFORE UPDATE OR DELETE ON director_ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION director_ledger_append_only();
CREATE TRIGGER director_ledger_truncate AFTER TRUNCATE ON director_ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION director_ledger_append_only();

-- Recomputes every roll-up from the ledger (the backfill below; also an operator's repair
-- and the reference the tests compare the incremental maintenance against).
CREATE FUNCTION director_rollups_rebuild() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    LOCK TABLE director_ledger_entries IN SHARE MODE;
    TRUNCATE director_kpi_org_total, director_kpi_org_day, director_kpi_org_month, director_kpi_event_day,
             director_kpi_event_total, director_debt_day;
    INSERT INTO director_kpi_org_total (organizer_id, currency, tickets, tickets_equivalent,
        assigned_cents, paid_cents, assignments, entries, last_at)
    SELECT organizer_id, currency::text,
           COALESCE(sum(tickets) FILTER (WHERE entry_type <> 'payment'), 0),
           COALESCE(sum(tickets_equivalent) FILTER (WHERE entry_type <> 'payment'), 0),
           COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0),
           COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0),
           count(*) FILTER (WHERE entry_type <> 'payment'), count(*), max(created_at)
    FROM director_ledger_entries GROUP BY 1, 2;
    INSERT INTO director_kpi_org_day (organizer_id, currency, day, tickets, tickets_equivalent,
        assigned_cents, paid_cents, entries, last_at)
    SELECT organizer_id, currency::text, (created_at AT TIME ZONE 'UTC')::date,
           COALESCE(sum(tickets) FILTER (WHERE entry_type <> 'payment'), 0),
           COALESCE(sum(tickets_equivalent) FILTER (WHERE entry_type <> 'payment'), 0),
           COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0),
           COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0),
           count(*), max(created_at)
    FROM director_ledger_entries GROUP BY 1, 2, 3 ORDER BY 3, 1, 2;
    INSERT INTO director_kpi_org_month (organizer_id, currency, month, tickets, tickets_equivalent,
        assigned_cents, paid_cents, entries, last_at)
    SELECT organizer_id, currency, date_trunc('month', day)::date, sum(tickets), sum(tickets_equivalent),
           sum(assigned_cents), sum(paid_cents), sum(entries), max(last_at)
    FROM director_kpi_org_day GROUP BY 1, 2, 3 ORDER BY 3, 1, 2;
    INSERT INTO director_kpi_event_day (event_id, organizer_id, currency, day, tickets,
        tickets_equivalent, assigned_cents, entries, last_at)
    SELECT COALESCE(event_id, ''), organizer_id, currency::text, (created_at AT TIME ZONE 'UTC')::date,
           sum(tickets), sum(tickets_equivalent), sum(amount_cents), count(*), max(created_at)
    FROM director_ledger_entries WHERE entry_type <> 'payment' GROUP BY 1, 2, 3, 4 ORDER BY 4, 1, 2, 3;
    INSERT INTO director_kpi_event_total (event_id, organizer_id, currency, tickets,
        tickets_equivalent, assigned_cents, entries, last_at)
    SELECT COALESCE(event_id, ''), organizer_id, currency::text,
           sum(tickets), sum(tickets_equivalent), sum(amount_cents), count(*), max(created_at)
    FROM director_ledger_entries WHERE entry_type <> 'payment' GROUP BY 1, 2, 3;
    CREATE TEMP TABLE director_rebuild_rem ON COMMIT DROP AS
    SELECT a.organizer_id, a.currency, a.id, a.created_at, a.cum - a.amount_cents AS cum_before,
           LEAST(a.amount_cents, GREATEST(0, a.cum - t.paid_cents)) AS rem
    FROM (SELECT organizer_id, currency::text AS currency, id, created_at, amount_cents,
                 sum(amount_cents) OVER (PARTITION BY organizer_id, currency ORDER BY created_at, id) AS cum
          FROM director_ledger_entries WHERE entry_type <> 'payment') a
    JOIN director_kpi_org_total t USING (organizer_id, currency);
    INSERT INTO director_debt_day (currency, day, stripe, unpaid_cents, unpaid_count)
    SELECT currency, (created_at AT TIME ZONE 'UTC')::date, (hashtext(organizer_id) & 31)::smallint,
           sum(rem), count(*)
    FROM director_rebuild_rem WHERE rem > 0 GROUP BY 1, 2, 3;
    UPDATE director_kpi_org_total t
    SET fifo_head_at = h.created_at, fifo_head_id = h.id, fifo_head_cum = h.cum_before
    FROM (SELECT DISTINCT ON (organizer_id, currency) organizer_id, currency, created_at, id, cum_before
          FROM director_rebuild_rem WHERE rem > 0 ORDER BY organizer_id, currency, created_at, id) h
    WHERE t.organizer_id = h.organizer_id AND t.currency = h.currency;
    DROP TABLE director_rebuild_rem;
END
$fn$;

SELECT director_rollups_rebuild();

-- The KPI views (seeds/000) become per-organizer (and event) snapshots of the roll-ups: the
-- day grain lives in the maintained tables the reports read, and `REFRESH … CONCURRENTLY`
-- (kpi_refresh, scripts/refresh_kpis.sql) now diffs thousands of rows instead of ~850,000.
DROP MATERIALIZED VIEW mv_kpi_tickets_entregados;
DROP MATERIALIZED VIEW mv_kpi_deuda_abierta;
DROP MATERIALIZED VIEW mv_kpi_top_organizadores;

-- Tickets delivered (assignments) per organizer, event and currency.
CREATE MATERIALIZED VIEW mv_kpi_tickets_entregados AS
SELECT organizer_id, event_id, currency, tickets, tickets_equivalent, assigned_cents, entries, last_at
FROM director_kpi_event_total;
CREATE UNIQUE INDEX mv_kpi_tickets_entregados_key ON mv_kpi_tickets_entregados (organizer_id, event_id, currency);

-- Assigned, paid and open debt (negative = credit) per organizer and currency.
CREATE MATERIALIZED VIEW mv_kpi_deuda_abierta AS
SELECT organizer_id, currency, assigned_cents, paid_cents, assigned_cents - paid_cents AS open_debt_cents,
       fifo_head_at AS oldest_unpaid_at, last_at
FROM director_kpi_org_total;
CREATE UNIQUE INDEX mv_kpi_deuda_abierta_key ON mv_kpi_deuda_abierta (organizer_id, currency);

-- Ranking material per organizer and currency.
CREATE MATERIALIZED VIEW mv_kpi_top_organizadores AS
SELECT organizer_id, currency, tickets, tickets_equivalent, assigned_cents, last_at AS last_activity_at,
       rank() OVER (PARTITION BY currency ORDER BY tickets_equivalent DESC) AS rank_tickets_equivalent
FROM director_kpi_org_total;
CREATE UNIQUE INDEX mv_kpi_top_organizadores_key ON mv_kpi_top_organizadores (organizer_id, currency);

-- The overview's dated guest and delivery breakdowns count statuses over a created_at range:
-- with the status in the index they read the index alone instead of one heap page per row
-- (5,130 pages for a 30-day window of the benchmark's deliveries). Same number of indexes.
DROP INDEX guests_created_idx;
CREATE INDEX guests_created_idx ON guests (created_at) INCLUDE (status, event_id);
DROP INDEX deliveries_created_idx;
CREATE INDEX deliveries_created_idx ON deliveries (created_at) INCLUDE (status, event_id);
