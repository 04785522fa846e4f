//! Director reports (seeds/000, "Reportes avanzados"): read from the roll-up tables that the
//! ledger trigger maintains (migration 6), in real time; debt aging for one organizer walks
//! that organizer's ledger.
//!
//! Amounts are never summed across currencies: every report is for one currency
//! (`currency` filter, default `DEFAULT_CURRENCY`).

use chrono::{Datelike, Months, NaiveDate, Utc};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};

pub const GUEST_STATUSES: [&str; 3] = ["pending", "confirmed", "scanned"];
pub const DELIVERY_STATUSES: [&str; 5] = ["queued", "sent", "delivered", "read", "failed"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    CreatedAt,
    Amount,
    Tickets,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created_at" => Some(Self::CreatedAt),
            "amount" => Some(Self::Amount),
            "tickets" => Some(Self::Tickets),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::Amount => "amount",
            Self::Tickets => "tickets",
        }
    }
}

/// Normalized filters and paging of a report request.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub organizer_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Sorted, deduplicated.
    pub statuses: Vec<String>,
    pub currency: String,
    pub page: i64,
    pub page_size: i64,
    pub sort: Sort,
    pub desc: bool,
    pub limit: Option<i64>,
}

impl ReportFilter {
    pub fn new(currency: &str) -> Self {
        Self {
            from: None,
            to: None,
            organizer_id: None,
            event_id: None,
            event_type: None,
            statuses: Vec::new(),
            currency: currency.to_string(),
            page: 1,
            page_size: 50,
            sort: Sort::Tickets,
            desc: true,
            limit: None,
        }
    }

    /// One key per normalized filter set (equal queries, equal keys).
    pub fn cache_key(&self) -> String {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        format!(
            "from={}&to={}&org={}&ev={}&type={}&status={}&cur={}&page={}&size={}&sort={}&dir={}&limit={}",
            self.from.map(|d| d.to_string()).unwrap_or_default(),
            self.to.map(|d| d.to_string()).unwrap_or_default(),
            opt(&self.organizer_id),
            opt(&self.event_id),
            opt(&self.event_type),
            self.statuses.join(","),
            self.currency,
            self.page,
            self.page_size,
            self.sort.as_str(),
            if self.desc { "desc" } else { "asc" },
            self.limit.map(|l| l.to_string()).unwrap_or_default(),
        )
    }

    fn meta(&self, total: Option<i64>) -> Value {
        let mut meta = json!({
            "from": self.from,
            "to": self.to,
            "currency": self.currency,
            "page": self.page,
            "pageSize": self.page_size,
            "sort": self.sort.as_str(),
            "dir": if self.desc { "desc" } else { "asc" },
            "generatedAt": Utc::now(),
        });
        if let Some(total) = total {
            meta["total"] = json!(total);
            meta["pages"] = json!(if total == 0 {
                0
            } else {
                (total + self.page_size - 1) / self.page_size
            });
        }
        meta
    }

    fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }

    fn dir(&self) -> &'static str {
        if self.desc {
            "DESC"
        } else {
            "ASC"
        }
    }
}

// Where a report reads its sums. Reports never scan the ledger or the KPI views: they read
// the roll-up tables that triggers on `director_ledger_entries` maintain in the writing
// transaction (migrations 6 and 8), so they are real time. All-time totals come from the
// per-organizer (or per-event) tables, date windows from the day- and month-grained ones;
// guest and delivery counts from director_status_day (migration 7).

/// The whole UTC months inside a date window, as (first month, first day after the last
/// month), each side `None` when the window is open on that side; `None` when the window holds
/// no whole month.
fn whole_months(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Option<(Option<NaiveDate>, Option<NaiveDate>)> {
    let lo = match from {
        None => None,
        Some(f) if f.day() == 1 => Some(f),
        Some(f) => Some(f.with_day(1)?.checked_add_months(Months::new(1))?),
    };
    let hi = match to {
        None => None,
        Some(t) => Some(t.succ_opt()?.with_day(1)?),
    };
    match (lo, hi) {
        (Some(l), Some(h)) if l >= h => None,
        _ => Some((lo, hi)),
    }
}

/// [`whole_months`] in SQL, from the bound `from` ($2): the first day of the first whole
/// month of the window (`from` itself on a first of the month, else the next month's first).
const FIRST_WHOLE_MONTH: &str =
    "(date_trunc('month', ($2::date - 1)::timestamp) + interval '1 month')::date";

/// [`whole_months`] in SQL, from the bound `to` ($3): the first day after the last whole month.
const END_OF_WHOLE_MONTHS: &str = "date_trunc('month', ($3::date + 1)::timestamp)::date";

/// Rows of the per-organizer roll-ups that cover the filters of `q` (columns organizer_id,
/// tickets_equivalent, assigned_cents, paid_cents, last_at; several rows per organizer).
/// Undated: the all-time totals. Dated: the whole UTC months of the window from the month
/// roll-up and the days around them from the day roll-up, so a long window reads about one
/// row per organizer and month instead of one per organizer and day.
fn org_rows(q: &ReportFilter) -> String {
    const COLS: &str = "organizer_id, tickets_equivalent, assigned_cents, paid_cents, last_at";
    let org = if q.organizer_id.is_some() {
        " AND organizer_id = $4"
    } else {
        ""
    };
    if !q.dated() {
        return format!("SELECT {COLS} FROM director_kpi_org_total WHERE currency = $1{org}");
    }
    let Some((lo, hi)) = whole_months(q.from, q.to) else {
        let from = if q.from.is_some() {
            " AND day >= $2"
        } else {
            ""
        };
        let to = if q.to.is_some() { " AND day <= $3" } else { "" };
        return format!(
            "SELECT {COLS} FROM director_kpi_org_day WHERE currency = $1{from}{to}{org}"
        );
    };
    // The month bounds are computed by Postgres from the bound dates ($2, $3), never written
    // into the SQL text: a date's text form is not always one Postgres reads back (chrono
    // writes the day after 9999-12-31 as `+10000-01-01`).
    let mut months = String::new();
    if lo.is_some() {
        months.push_str(&format!(" AND month >= {FIRST_WHOLE_MONTH}"));
    }
    if hi.is_some() {
        months.push_str(&format!(" AND month < {END_OF_WHOLE_MONTHS}"));
    }
    let mut parts = vec![format!(
        "SELECT {COLS} FROM director_kpi_org_month WHERE currency = $1{months}{org}"
    )];
    if let (Some(from), Some(lo)) = (q.from, lo) {
        if from < lo {
            parts.push(format!(
                "SELECT {COLS} FROM director_kpi_org_day \
                 WHERE currency = $1 AND day >= $2 AND day < {FIRST_WHOLE_MONTH}{org}"
            ));
        }
    }
    if let (Some(to), Some(hi)) = (q.to, hi) {
        if to >= hi {
            parts.push(format!(
                "SELECT {COLS} FROM director_kpi_org_day \
                 WHERE currency = $1 AND day >= {END_OF_WHOLE_MONTHS} AND day <= $3{org}"
            ));
        }
    }
    parts.join(" UNION ALL ")
}

fn event_source(q: &ReportFilter) -> &'static str {
    if q.dated() {
        "director_kpi_event_day"
    } else {
        "director_kpi_event_total"
    }
}

/// Column names for [`conditions`]; `None` = that filter does not apply to the source.
#[derive(Default)]
struct Cols<'a> {
    currency: &'a str,
    day: Option<&'a str>,
    org: Option<&'a str>,
    event: Option<&'a str>,
    event_type: Option<&'a str>,
}

/// [`Cols`] of an event roll-up aliased `t`, joined to `events e` for the event type.
const EVENT_ROLLUP: Cols<'static> = Cols {
    currency: "t.currency",
    day: Some("t.day"),
    org: Some("t.organizer_id"),
    event: Some("t.event_id"),
    event_type: Some("e.type"),
};

/// The WHERE clause of the filters present in `q`, over the parameters every report binds
/// first and in this order ([`bind_filters`]): $1 currency, $2 from, $3 to, $4 organizer,
/// $5 event, $6 event type. Absent filters are left out of the SQL text (rather than
/// `$n IS NULL OR …`), so each filter combination gets a plan that can use its index even
/// once Postgres switches a prepared statement to its generic plan.
fn conditions(q: &ReportFilter, c: &Cols) -> String {
    let mut out = vec![format!("{} = $1", c.currency)];
    if let Some(day) = c.day {
        if q.from.is_some() {
            out.push(format!("{day} >= $2"));
        }
        if q.to.is_some() {
            out.push(format!("{day} <= $3"));
        }
    }
    if let (Some(col), Some(_)) = (c.org, &q.organizer_id) {
        out.push(format!("{col} = $4"));
    }
    if let (Some(col), Some(_)) = (c.event, &q.event_id) {
        out.push(format!("{col} = $5"));
    }
    if let (Some(col), Some(_)) = (c.event_type, &q.event_type) {
        out.push(format!("{col} = $6"));
    }
    out.join(" AND ")
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_filters<'q>(sql: &'q str, q: &'q ReportFilter) -> PgQuery<'q> {
    sqlx::query(sql)
        .bind(&q.currency)
        .bind(q.from)
        .bind(q.to)
        .bind(&q.organizer_id)
        .bind(&q.event_id)
        .bind(&q.event_type)
}

impl ReportFilter {
    fn dated(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }
}

/// `GET /director/reports/overview`.
pub async fn overview(pool: &PgPool, q: &ReportFilter) -> Result<Value, sqlx::Error> {
    // Per organizer: assignments (tickets, value), payments, activity. Payments belong to
    // organizers, not events: an eventId filter does not narrow them.
    let org_cols = Cols {
        currency: "currency",
        day: Some("day"),
        org: Some("organizer_id"),
        ..Cols::default()
    };
    let sql = if q.dated() && q.organizer_id.is_none() {
        // A window over all organizers: the per-day totals and activity bitmaps of
        // migration 8 (32 rows per day up to 8,192 organizers); an organizer active on
        // several days of the window is one bit of the OR, so it counts once.
        format!(
            "SELECT COALESCE(sum(te), 0)::bigint AS te, COALESCE(sum(assigned), 0)::bigint AS assigned, \
                    COALESCE(sum(paid), 0)::bigint AS paid, COALESCE(sum(bit_count(active)), 0)::bigint AS active \
             FROM (SELECT sum(tickets_equivalent) AS te, sum(assigned_cents) AS assigned, \
                          sum(paid_cents) AS paid, bit_or(active) AS active \
                   FROM director_kpi_day WHERE {} GROUP BY chunk, stripe) per_bitmap",
            conditions(q, &org_cols)
        )
    } else {
        format!(
            "SELECT COALESCE(sum(te), 0)::bigint AS te, COALESCE(sum(assigned), 0)::bigint AS assigned, \
                    COALESCE(sum(paid), 0)::bigint AS paid, count(*)::bigint AS active FROM ( \
                 SELECT organizer_id, sum(tickets_equivalent) AS te, sum(assigned_cents) AS assigned, \
                        sum(paid_cents) AS paid \
                 FROM ({rows}) w GROUP BY organizer_id) per_organizer",
            rows = org_rows(q)
        )
    };
    let ev_sql = q.event_id.as_ref().map(|_| {
        let ev_cols = Cols {
            event: Some("event_id"),
            ..org_cols
        };
        format!(
            "SELECT COALESCE(sum(tickets_equivalent), 0)::bigint AS te, \
                    COALESCE(sum(assigned_cents), 0)::bigint AS assigned, \
                    count(DISTINCT organizer_id)::bigint AS active \
             FROM {src} WHERE {cond}",
            src = event_source(q),
            cond = conditions(q, &ev_cols)
        )
    });
    // Independent queries, each on its own pooled connection: the overview costs the
    // slowest of them, not their sum.
    let (row, ev, guests, deliveries) = tokio::try_join!(
        bind_filters(&sql, q).fetch_one(pool),
        async {
            match &ev_sql {
                Some(ev_sql) => bind_filters(ev_sql, q).fetch_one(pool).await.map(Some),
                None => Ok(None),
            }
        },
        breakdown(pool, q, "guests", &GUEST_STATUSES),
        breakdown(pool, q, "deliveries", &DELIVERY_STATUSES),
    )?;
    let paid: i64 = row.try_get("paid")?;
    // With an event filter, assignments and active organizers come from the per-event
    // roll-up (organizers with assignments on that event).
    let src = ev.as_ref().unwrap_or(&row);
    let te: i64 = src.try_get("te")?;
    let assigned: i64 = src.try_get("assigned")?;
    let active: i64 = src.try_get("active")?;
    let data = json!([
        { "metric": "ticketsEquivalentDelivered", "value": te },
        { "metric": "assignedValueCents", "value": assigned },
        { "metric": "openDebtCents", "value": assigned - paid },
        { "metric": "activeOrganizers", "value": active },
        { "metric": "paymentsAppliedCents", "value": paid },
        { "metric": "guestsByStatus", "breakdown": guests },
        { "metric": "deliveriesByStatus", "breakdown": deliveries },
    ]);
    let mut meta = q.meta(None);
    meta["page"] = json!(1);
    meta["pageSize"] = json!(7);
    Ok(json!({ "meta": meta, "data": data }))
}

/// Counts per status of `table` (guests or deliveries), narrowed by event, organizer (through
/// the event), date and the statuses of the `status` filter that apply to this table.
async fn breakdown(
    pool: &PgPool,
    q: &ReportFilter,
    table: &str,
    statuses: &[&str],
) -> Result<Value, sqlx::Error> {
    let wanted: Vec<String> = if q.statuses.is_empty() {
        statuses.iter().map(|s| s.to_string()).collect()
    } else {
        q.statuses
            .iter()
            .filter(|s| statuses.contains(&s.as_str()))
            .cloned()
            .collect()
    };
    if wanted.is_empty() {
        return Ok(json!([]));
    }
    if q.event_id.is_none() && q.organizer_id.is_none() {
        return breakdown_counted(pool, q, table, &wanted).await;
    }
    // Narrowed to one event or one organizer's events: count the rows themselves (an index
    // range of that event's guests or deliveries).
    // Only the filters present enter the SQL (see `conditions`); the events join only for an
    // organizer filter (every row's event exists: foreign key).
    // Every status of the table (the CHECK constraint) = no status condition, so the count
    // stays on the event's index instead of also walking the status index.
    let mut cond = vec!["true".to_string()];
    if wanted.len() < statuses.len() {
        cond.push("x.status = ANY($1)".into());
    }
    if q.event_id.is_some() {
        cond.push("x.event_id = $2".into());
    }
    if q.organizer_id.is_some() {
        cond.push("e.organizer_id = $3".into());
    }
    if q.from.is_some() {
        cond.push("x.created_at >= $4::date".into());
    }
    if q.to.is_some() {
        cond.push("x.created_at < $5::date + 1".into());
    }
    let join = if q.organizer_id.is_some() {
        "JOIN events e ON e.id = x.event_id"
    } else {
        ""
    };
    let sql = format!(
        "SELECT x.status, count(*)::bigint AS n FROM {table} x {join} WHERE {} \
         GROUP BY x.status ORDER BY x.status",
        cond.join(" AND ")
    );
    let rows = sqlx::query(&sql)
        .bind(&wanted)
        .bind(&q.event_id)
        .bind(&q.organizer_id)
        .bind(q.from)
        .bind(q.to)
        .fetch_all(pool)
        .await?;
    status_counts(&rows)
}

/// [`breakdown`] over all events: sums the per-day counts that the triggers of migration 7
/// keep (one per day and status: ≈ 3,600 for two years of deliveries), instead of counting
/// every row.
async fn breakdown_counted(
    pool: &PgPool,
    q: &ReportFilter,
    table: &str,
    wanted: &[String],
) -> Result<Value, sqlx::Error> {
    let mut cond = vec!["source = $1", "status = ANY($2)"];
    if q.from.is_some() {
        cond.push("day >= $3");
    }
    if q.to.is_some() {
        cond.push("day <= $4");
    }
    let sql = format!(
        "SELECT status, sum(n)::bigint AS n FROM director_status_day WHERE {} \
         GROUP BY status HAVING sum(n) > 0 ORDER BY status",
        cond.join(" AND ")
    );
    let rows = sqlx::query(&sql)
        .bind(table)
        .bind(wanted)
        .bind(q.from)
        .bind(q.to)
        .fetch_all(pool)
        .await?;
    status_counts(&rows)
}

fn status_counts(rows: &[sqlx::postgres::PgRow]) -> Result<Value, sqlx::Error> {
    rows.iter()
        .map(|r| Ok(json!({ "status": r.try_get::<String, _>("status")?, "count": r.try_get::<i64, _>("n")? })))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map(Value::from)
}

/// `GET /director/reports/top-organizers`: ranking by tickets equivalent (or `sort`).
pub async fn top_organizers(pool: &PgPool, q: &ReportFilter) -> Result<Value, sqlx::Error> {
    let order = match q.sort {
        Sort::Tickets => "tickets_equivalent",
        Sort::Amount => "assigned_cents",
        Sort::CreatedAt => "last_activity_at",
    };
    // With an event filter the per-event roll-up is the source (assignments only);
    // otherwise the per-organizer one (a payment is activity too).
    let source = if q.event_id.is_some() || q.event_type.is_some() {
        let join = if q.event_type.is_some() {
            "JOIN events e ON e.id = t.event_id"
        } else {
            ""
        };
        let cond = conditions(q, &EVENT_ROLLUP);
        format!(
            "SELECT t.organizer_id, t.tickets_equivalent, t.assigned_cents, t.last_at AS last_activity_at \
             FROM {src} t {join} WHERE {cond}",
            src = event_source(q)
        )
    } else {
        format!(
            "SELECT organizer_id, tickets_equivalent, assigned_cents, last_at AS last_activity_at \
             FROM ({rows}) w",
            rows = org_rows(q)
        )
    };
    let ranking = format!(
        "SELECT organizer_id, sum(tickets_equivalent)::bigint AS tickets_equivalent, \
                sum(assigned_cents)::bigint AS assigned_cents, max(last_activity_at) AS last_activity_at \
         FROM ({source}) s GROUP BY organizer_id"
    );
    paged_ranking(pool, q, &ranking, order, "organizer_id", |r| {
        Ok(json!({
            "organizerId": r.try_get::<String, _>("organizer_id")?,
            "ticketsEquivalent": r.try_get::<i64, _>("tickets_equivalent")?,
            "assignedValueCents": r.try_get::<i64, _>("assigned_cents")?,
            "lastActivityAt": r.try_get::<Option<chrono::DateTime<Utc>>, _>("last_activity_at")?,
        }))
    })
    .await
}

/// A paged ranking with its total, the shape of top-organizers and tickets-usage: `ranking`
/// yields one row per item (filters bound as in [`bind_filters`]); it is ordered by `order`
/// (ties by `key`) and cut at `limit` ($7), then the page ($8, $9) is read next to the count.
/// Past the end the query still returns one row, of NULLs but the total.
async fn paged_ranking(
    pool: &PgPool,
    q: &ReportFilter,
    ranking: &str,
    order: &str,
    key: &str,
    item: impl Fn(&sqlx::postgres::PgRow) -> Result<Value, sqlx::Error>,
) -> Result<Value, sqlx::Error> {
    let sql = format!(
        "WITH ranked AS ({ranking} ORDER BY {order} {dir}, {key} LIMIT $7) \
         SELECT c.total, p.* FROM (SELECT count(*) AS total FROM ranked) c \
         LEFT JOIN LATERAL (SELECT * FROM ranked ORDER BY {order} {dir}, {key} \
                            LIMIT $8 OFFSET $9) p ON true",
        dir = q.dir()
    );
    let rows = bind_filters(&sql, q)
        .bind(q.limit.unwrap_or(i64::MAX))
        .bind(q.page_size)
        .bind(q.offset())
        .fetch_all(pool)
        .await?;
    let total: i64 = rows
        .first()
        .map(|r| r.try_get("total"))
        .transpose()?
        .unwrap_or(0);
    let data = rows
        .iter()
        .filter(|r| r.try_get::<Option<String>, _>(key).ok().flatten().is_some())
        .map(item)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(json!({ "meta": q.meta(Some(total)), "data": data }))
}

/// `GET /director/reports/tickets-usage`: assignments per event.
pub async fn tickets_usage(pool: &PgPool, q: &ReportFilter) -> Result<Value, sqlx::Error> {
    let order = match q.sort {
        Sort::Tickets => "tickets_assigned",
        Sort::Amount => "assigned_cents",
        Sort::CreatedAt => "last_movement_at",
    };
    let cond = conditions(q, &EVENT_ROLLUP);
    let ranking = format!(
        "SELECT t.event_id, e.name AS event_name, e.type AS event_type, \
                sum(t.tickets)::bigint AS tickets_assigned, \
                sum(t.tickets_equivalent)::bigint AS tickets_equivalent, \
                sum(t.assigned_cents)::bigint AS assigned_cents, max(t.last_at) AS last_movement_at \
         FROM {src} t JOIN events e ON e.id = t.event_id \
         WHERE {cond} \
         GROUP BY t.event_id, e.name, e.type",
        src = event_source(q)
    );
    paged_ranking(pool, q, &ranking, order, "event_id", |r| {
        Ok(json!({
            "eventId": r.try_get::<String, _>("event_id")?,
            "eventName": r.try_get::<String, _>("event_name")?,
            "eventType": r.try_get::<String, _>("event_type")?,
            "ticketsAssigned": r.try_get::<i64, _>("tickets_assigned")?,
            "ticketsEquivalent": r.try_get::<i64, _>("tickets_equivalent")?,
            "assignedValueCents": r.try_get::<i64, _>("assigned_cents")?,
            "lastMovementAt": r.try_get::<Option<chrono::DateTime<Utc>>, _>("last_movement_at")?,
        }))
    })
    .await
}

/// `GET /director/reports/debt-aging`: payments pay the oldest assignments first (FIFO, per
/// organizer and currency); each assignment's unpaid remainder is aged by its (UTC) date, as
/// of `to` (default today), into 0-30, 31-60, 61-90 and >90 days. `count` = assignments with
/// a remainder in the bucket. `from`/`to` narrow the assignments reported, not the payments
/// applied (a payment settles old debt whatever the report's window).
///
/// Over all organizers this sums `director_debt_day` (remainders per currency and day, kept
/// by the ledger trigger: a few thousand rows); for one organizer it walks that organizer's
/// assignments (an index range, a few hundred rows), which also serves as the reference the
/// tests compare the maintained remainders against.
pub async fn debt_aging(pool: &PgPool, q: &ReportFilter) -> Result<Value, sqlx::Error> {
    let as_of = q.to.unwrap_or_else(|| Utc::now().date_naive());
    let from_cond = if q.from.is_some() {
        "AND day >= $3"
    } else {
        ""
    };
    let sql = if q.organizer_id.is_some() {
        format!(
            "WITH a AS ( \
                 SELECT created_at, amount_cents, \
                        sum(amount_cents) OVER (ORDER BY created_at, id) AS cum \
                 FROM director_ledger_entries \
                 WHERE organizer_id = $2 AND currency = $1::char(3) AND entry_type <> 'payment'), \
             p AS ( \
                 SELECT COALESCE(sum(amount_cents), 0) AS paid FROM director_ledger_entries \
                 WHERE organizer_id = $2 AND currency = $1::char(3) AND entry_type = 'payment'), \
             r AS ( \
                 SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day, \
                        LEAST(a.amount_cents, GREATEST(0, a.cum - p.paid)) AS unpaid \
                 FROM a CROSS JOIN p) \
             SELECT $4::date - day AS age, unpaid AS unpaid_cents, 1 AS unpaid_count \
             FROM r WHERE unpaid > 0 AND day <= $4 {from_cond}"
        )
    } else {
        format!(
            "SELECT $4::date - day AS age, unpaid_cents, unpaid_count FROM director_debt_day \
             WHERE currency = $1 AND day <= $4 {from_cond} AND unpaid_count <> 0"
        )
    };
    let sql = format!(
        "SELECT CASE WHEN age <= 30 THEN '0-30' WHEN age <= 60 THEN '31-60' \
                     WHEN age <= 90 THEN '61-90' ELSE '>90' END AS bucket, \
                sum(unpaid_cents)::bigint AS amount, sum(unpaid_count)::bigint AS n \
         FROM ({sql}) aged GROUP BY 1"
    );
    let rows = sqlx::query(&sql)
        .bind(&q.currency)
        .bind(&q.organizer_id)
        .bind(q.from)
        .bind(as_of)
        .fetch_all(pool)
        .await?;
    let mut buckets: Vec<(String, i64, i64)> = ["0-30", "31-60", "61-90", ">90"]
        .iter()
        .map(|b| (b.to_string(), 0, 0))
        .collect();
    for r in &rows {
        let name: String = r.try_get("bucket")?;
        if let Some(b) = buckets.iter_mut().find(|b| b.0 == name) {
            b.1 = r.try_get("amount")?;
            b.2 = r.try_get("n")?;
        }
    }
    let data: Vec<Value> = buckets
        .into_iter()
        .map(|(bucket, amount, count)| json!({ "bucket": bucket, "amountCents": amount, "count": count }))
        .collect();
    let mut meta = q.meta(None);
    meta["asOf"] = json!(as_of);
    Ok(json!({ "meta": meta, "data": data }))
}

/// The three KPI views, in refresh order.
pub const VIEWS: [&str; 3] = [
    "mv_kpi_tickets_entregados",
    "mv_kpi_deuda_abierta",
    "mv_kpi_top_organizadores",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn whole_months_of_a_window() {
        assert_eq!(
            whole_months(Some(d("2025-11-01")), Some(d("2025-11-30"))),
            Some((Some(d("2025-11-01")), Some(d("2025-12-01"))))
        );
        assert_eq!(
            whole_months(Some(d("2025-10-15")), Some(d("2026-01-14"))),
            Some((Some(d("2025-11-01")), Some(d("2026-01-01"))))
        );
        assert_eq!(
            whole_months(Some(d("2025-10-15")), Some(d("2025-11-29"))),
            None
        );
        assert_eq!(
            whole_months(Some(d("2025-12-20")), Some(d("2025-12-20"))),
            None
        );
        assert_eq!(
            whole_months(None, Some(d("2025-12-31"))),
            Some((None, Some(d("2026-01-01"))))
        );
        assert_eq!(
            whole_months(Some(d("2025-12-31")), None),
            Some((Some(d("2026-01-01")), None))
        );
    }
}
