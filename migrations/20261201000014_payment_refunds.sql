-- Refunds (issue 12): a succeeded payment that the provider refunds (or charges back) is
-- reversed in the director ledger by a `payment` entry of the opposite amount, written in the
-- transaction that completes the refund's `payment_webhook` task. The ledger stays
-- append-only; only a payment may be negative.
ALTER TABLE director_ledger_entries DROP CONSTRAINT director_ledger_entries_amount_cents_check;
ALTER TABLE director_ledger_entries ADD CONSTRAINT director_ledger_entries_amount_cents_check
    CHECK (amount_cents >= 0 OR entry_type = 'payment');

-- The payment that reversed a payment's ledger entry.
ALTER TABLE payments ADD COLUMN refund_entry_id uuid;

-- The roll-up trigger of migration 6, with a negative payment (a refund) handled: it may make
-- paid assignments unpaid again, so the FIFO walk starts at the organizer's first assignment
-- (see `first_all`), and the single-entry fast path never skips it. The sums (paid_cents,
-- director_kpi_day) need nothing: a refund adds its negative amount.
CREATE OR REPLACE FUNCTION director_ledger_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
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
            IF tot.fifo_head_at IS NULL AND r.amount_cents >= 0 THEN
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
    -- A refund (a negative payment) un-pays: the head can only move back, to anywhere, so the
    -- walk starts at the organizer's first assignment. Refunds are rare; this is their cost.
    first_all AS (
        SELECT a.org, a.cur, x.created_at, x.id
        FROM aff a
        CROSS JOIN LATERAL (
            SELECT created_at, id FROM director_ledger_entries x
            WHERE x.organizer_id = a.org AND x.currency = a.cur::char(3) AND x.entry_type <> 'payment'
            ORDER BY x.created_at, x.id LIMIT 1) x
        WHERE a.new_paid < 0),
    st0 AS (
        SELECT a.org, a.cur, a.new_paid, t.assigned_cents AS a_new, t.paid_cents AS p_new,
               t.fifo_head_at, t.fifo_head_id, t.fifo_head_cum,
               a.new_paid > 0 AND t.fifo_head_at IS NOT NULL
                   AND (f.id IS NULL OR (t.fifo_head_at, t.fifo_head_id) < (f.created_at, f.id)) AS from_head,
               f.id IS NULL AND a.new_paid > 0 AND t.fifo_head_at IS NOT NULL AS pay_only,
               COALESCE(fa.created_at, f.created_at) AS first_at, COALESCE(fa.id, f.id) AS first_id
        FROM aff a
        JOIN director_kpi_org_total t ON t.organizer_id = a.org AND t.currency = a.cur
        LEFT JOIN first_new f ON f.org = a.org AND f.cur = a.cur
        LEFT JOIN first_all fa ON fa.org = a.org AND fa.cur = a.cur),
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
