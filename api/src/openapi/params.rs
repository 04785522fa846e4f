//! The parameters of the routes, one type per set: what `routes::*` reads from the path,
//! the query string and the headers, with the limits it enforces. Query values are read
//! exactly (`routes::query_value`): where a route treats an empty value as "not given", the
//! schema allows the empty string.

use engine::TaskStatus;
use jobs::domain::reports::{DELIVERY_STATUSES, GUEST_STATUSES};
use utoipa::{
    openapi::{
        path::{Parameter, ParameterBuilder, ParameterIn},
        schema::ObjectBuilder,
        Required,
    },
    IntoParams,
};

use super::shapes::{component, integer, one_of_names, or_empty, string};
use crate::routes::{
    reports::{EVENT_TYPES, MAX_LIMIT, SORTS},
    MAX_PAGE, MAX_PAGE_SIZE,
};

/// A set of parameters whose schemas are built here (utoipa's derive drops the description
/// and `required` of a field whose schema is given by a function): the struct, and its
/// `IntoParams` listing each field under its wire name with its doc comment as description.
macro_rules! parameters {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident in $place:ident {
            $(
                $(#[doc = $field_doc:literal])*
                $field:ident: $ty:ty => $wire:literal, $required:ident, $schema:expr;
            )*
        }
    ) => {
        $(#[doc = $doc])*
        pub struct $name {
            $( $(#[doc = $field_doc])* pub $field: $ty, )*
        }

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![$(
                    ParameterBuilder::new()
                        .name($wire)
                        .parameter_in(ParameterIn::$place)
                        .required(parameters!(@required $required))
                        .description(Some(joined(&[$($field_doc),*])))
                        .schema(Some($schema))
                        .build(),
                )*]
            }
        }
    };
    (@required required) => { Required::True };
    (@required optional) => { Required::False };
}

/// A doc comment's lines as one description.
fn joined(lines: &[&str]) -> String {
    lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
}

parameters! {
    /// The `Idempotency-Key` header of every enqueue (`routes::idempotency_key`).
    pub struct IdempotencyKey in Header {
        /// 1-255 visible ASCII characters; the same key and body return the same task
        idempotency_key: Option<String> => "Idempotency-Key", optional, idempotency_key();
    }
}

fn idempotency_key() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(crate::routes::MAX_IDEMPOTENCY_KEY_LEN))
        .pattern(Some("^[!-~]+$"))
}

/// Every guest and delivery status a report filters on.
pub fn report_statuses() -> Vec<&'static str> {
    GUEST_STATUSES
        .iter()
        .chain(DELIVERY_STATUSES.iter())
        .copied()
        .collect()
}

/// A comma-separated list of statuses (blanks around items and empty items ignored), what
/// `routes::reports::parse_query` accepts.
pub fn status_list() -> ObjectBuilder {
    let any = report_statuses().join("|");
    string().pattern(Some(format!(r"^\s*({any})?\s*(,\s*({any})?\s*)*$")))
}

/// `YYYY-MM-DD` with a four-digit year (`routes::reports::calendar_date`).
pub fn calendar_date() -> ObjectBuilder {
    string()
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Date,
        )))
        .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
}

pub fn page() -> ObjectBuilder {
    integer(1, MAX_PAGE)
}

pub fn page_size() -> ObjectBuilder {
    integer(1, MAX_PAGE_SIZE)
}

pub fn limit() -> ObjectBuilder {
    integer(1, MAX_LIMIT)
}

pub fn event_type() -> ObjectBuilder {
    one_of_names(&EVENT_TYPES)
}

pub fn sort() -> ObjectBuilder {
    one_of_names(&SORTS)
}

pub fn dir() -> ObjectBuilder {
    one_of_names(&["asc", "desc"])
}

parameters! {
    /// The filters and paging of the dashboard reports (`routes::reports::parse_query`).
    pub struct ReportFilters in Query {
        /// first day, YYYY-MM-DD (four-digit year: 0000-01-01 to 9999-12-31; anything else is a 400)
        /// An empty value is the same as leaving the parameter out. Must not be after `to` (400).
        from: Option<String> => "from", optional, or_empty(calendar_date());
        /// last day, YYYY-MM-DD (inclusive) (four-digit year: 0000-01-01 to 9999-12-31; anything
        /// else is a 400) An empty value is the same as leaving the parameter out.
        to: Option<String> => "to", optional, or_empty(calendar_date());
        /// comma-separated guest/delivery statuses An empty value is the same as leaving the
        /// parameter out.
        status: Option<String> => "status", optional, or_empty(status_list());
        /// An empty value is the same as leaving the parameter out.
        organizer_id: Option<String> => "organizerId", optional, or_empty(component("Id"));
        /// An empty value is the same as leaving the parameter out.
        event_id: Option<String> => "eventId", optional, or_empty(component("Id"));
        /// An empty value is the same as leaving the parameter out.
        event_type: Option<String> => "eventType", optional, or_empty(event_type());
        /// ISO 4217, default DEFAULT_CURRENCY An empty value is the same as leaving the
        /// parameter out.
        currency: Option<String> => "currency", optional, or_empty(component("Currency"));
        /// An empty value is the same as leaving the parameter out.
        page: Option<i64> => "page", optional, or_empty(page());
        /// An empty value is the same as leaving the parameter out.
        page_size: Option<i64> => "pageSize", optional, or_empty(page_size());
        /// An empty value is the same as leaving the parameter out.
        sort: Option<String> => "sort", optional, or_empty(sort());
        /// An empty value is the same as leaving the parameter out.
        dir: Option<String> => "dir", optional, or_empty(dir());
        /// An empty value is the same as leaving the parameter out.
        limit: Option<i64> => "limit", optional, or_empty(limit());
    }
}

parameters! {
    /// The paging and currency of an organizer's ledger (`routes::reports::ledger`).
    pub struct LedgerQuery in Query {
        /// An empty value is the same as leaving the parameter out.
        page: Option<i64> => "page", optional, page();
        /// An empty value is the same as leaving the parameter out.
        page_size: Option<i64> => "pageSize", optional, page_size();
        /// An empty value is the same as leaving the parameter out.
        currency: Option<String> => "currency", optional, component("Currency");
    }
}

fn task_status() -> ObjectBuilder {
    one_of_names(&TaskStatus::ALL.map(TaskStatus::as_str))
}

parameters! {
    /// The listing of every requester's tasks (`routes::admin::list`).
    pub struct AdminTaskList in Query {
        status: Option<String> => "status", optional, or_empty(task_status());
        /// a task kind (e.g. report_export); empty = every kind
        kind: Option<String> => "kind", optional, or_empty(component("Id"));
        page: Option<i64> => "page", optional, page();
        page_size: Option<i64> => "pageSize", optional, page_size();
    }
}

parameters! {
    /// Which failed or dead tasks to re-drive (`routes::admin::retry_all`).
    pub struct RedriveFilter in Query {
        /// failed or dead
        status: String => "status", required, one_of_names(&crate::routes::admin::REDRIVABLE);
        /// a task kind (e.g. report_export); empty = every kind
        kind: Option<String> => "kind", optional, or_empty(component("Id"));
    }
}

parameters! {
    /// The long-poll of `GET /tasks/{id}` (its maximum is `ApiConfig::long_poll_max`, written
    /// into the document when it is built).
    pub struct Wait in Query {
        /// seconds to wait for a change
        wait: Option<u64> => "wait", optional,
            integer(0, crate::config::LONG_POLL_MAX_SECONDS as i64);
    }
}

fn uuid_string() -> ObjectBuilder {
    string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
        utoipa::openapi::KnownFormat::Uuid,
    )))
}

parameters! {
    /// A task of the caller, by id.
    pub struct TaskId in Path {
        /// task id (uuid)
        id: String => "id", required, uuid_string();
    }
}

/// A task of any requester, by id; one that is not a uuid is a 404 like a missing one.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AnyTaskId {
    pub id: String,
}

parameters! {
    pub struct OrganizerId in Path {
        /// organizer id
        id: String => "id", required, component("Id");
    }
}

parameters! {
    pub struct EventPath in Path {
        event_id: String => "eventId", required, component("Id");
    }
}

parameters! {
    pub struct GuestPath in Path {
        event_id: String => "eventId", required, component("Id");
        guest_id: String => "guestId", required, component("Id");
    }
}

/// What `jobs::deliveries::phone::normalize` accepts.
fn phone() -> ObjectBuilder {
    string()
        .pattern(Some(
            r"^\s*\+?[ .()-]*[1-9]([ .()-]*[0-9]){7,14}[ .()-]*\s*$",
        ))
        .description(Some(
            "E.164: optional '+' and 8 to 15 digits (spaces, '-', '.', '(' and ')' ignored)",
        ))
}

parameters! {
    pub struct PhonePath in Path {
        /// E.164
        phone: String => "phone", required, phone();
    }
}

/// A file of the local export store (`routes::files`).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FileKey {
    /// exports/<task>/<file>
    pub key: String,
}

/// The signature of a download link; a link without it is refused (403).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileLink {
    /// unix seconds
    pub expires: Option<String>,
    /// hex HMAC-SHA256
    pub signature: Option<String>,
}

parameters! {
    /// A payment of the caller, by id (the id of the `payment_intent` task that created it).
    pub struct PaymentId in Path {
        /// payment id (uuid)
        id: String => "id", required, uuid_string();
    }
}

parameters! {
    /// The provider whose webhook this is.
    pub struct PaymentProvider in Path {
        /// stripe, conekta, wompi or mock
        provider: String => "provider", required,
            one_of_names(&["stripe", "conekta", "wompi", "mock"]);
    }
}

parameters! {
    pub struct ScheduleId in Path {
        /// schedule id (e.g. `kpi_refresh`)
        id: String => "id", required, string().max_length(Some(64));
    }
}

parameters! {
    pub struct QueueName in Path {
        /// queue name (`assignments`, `reports`, `deliveries`, `webhooks`, `maintenance`)
        queue: String => "queue", required, string().max_length(Some(64));
    }
}
