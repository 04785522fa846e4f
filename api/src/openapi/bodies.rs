//! The JSON bodies of the routes that take one, one type per route, stating what the
//! handler's checks (`body::JsonObject` calls in `routes::*`) accept: required fields, the
//! type and limits of each, `null` as "not given", and no unknown field
//! (`deny_unknown_fields`, the handlers' "is not a known field"). The handlers keep their
//! own parsing, which names every field at fault in one 400; these types describe it.
//!
//! The serde derive is there for the attributes utoipa reads (`rename_all`,
//! `deny_unknown_fields`); the tests of `openapi` also decode the README's examples with it.

use jobs::{
    exports::{Format, Report},
    kinds::assignment::{MAX_PRICE_CENTS, MAX_TICKETS},
    kinds::delivery_bulk::MAX_GUEST_IDS,
    kinds::payment::MAX_AMOUNT_CENTS,
};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{
    openapi::{
        schema::{AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type},
        RefOr,
    },
    PartialSchema, ToSchema,
};

use super::{
    params::{
        calendar_date, dir, event_type, limit, page, page_size, report_statuses, sort, status_list,
    },
    shapes::{
        array_of, component, integer, money, null, one_of_names, or_empty_or_null, or_null, string,
    },
};
use crate::routes::{director::MAX_METADATA_BYTES, exports::MAX_NOTIFY};

/// Cents to the major units the body states them in.
fn major(cents: i64) -> f64 {
    cents as f64 / 100.0
}

fn channel() -> ObjectBuilder {
    one_of_names(&["whatsapp", "email"])
}
fn message_kind() -> Schema {
    or_null(one_of_names(&["invitation", "reminder"]))
}
fn template() -> Schema {
    or_null(component("Template"))
}
fn id() -> RefOr<Schema> {
    component("Id")
}
fn currency() -> Schema {
    or_null(component("Currency"))
}
fn metadata() -> Schema {
    or_null(
        AllOfBuilder::new()
            .item(component("StorableObject"))
            .description(Some(format!(
                "free JSON, at most {MAX_METADATA_BYTES} bytes of text"
            ))),
    )
}
fn assignment_type() -> ObjectBuilder {
    one_of_names(&["prepaid", "loan"])
}
fn tickets() -> ObjectBuilder {
    integer(1, MAX_TICKETS)
}
fn price() -> ObjectBuilder {
    money()
        .minimum(Some(0))
        .maximum(Some(major(MAX_PRICE_CENTS)))
}

/// `POST /director/assign` (`routes::director::assign`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignRequest {
    #[schema(schema_with = id)]
    pub organizer_id: String,
    #[schema(schema_with = id)]
    pub event_id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = assignment_type)]
    pub assignment_type: String,
    #[schema(schema_with = tickets)]
    pub tickets: i64,
    #[schema(schema_with = price)]
    pub price: f64,
    #[schema(schema_with = currency)]
    pub currency: Option<String>,
    #[schema(schema_with = metadata)]
    pub metadata: Option<Value>,
    /// Start no sooner than this (RFC 3339); the task is `scheduled` until then. Not with
    /// `delaySeconds`.
    #[schema(schema_with = start_at)]
    pub run_at: Option<String>,
    /// Start this many seconds from now. Not with `runAt`.
    #[schema(schema_with = delay_seconds)]
    pub delay_seconds: Option<i64>,
}

fn amount() -> Schema {
    or_null(
        money()
            .exclusive_minimum(Some(0))
            .maximum(Some(major(MAX_AMOUNT_CENTS))),
    )
}
fn amount_cents() -> Schema {
    or_null(integer(1, MAX_AMOUNT_CENTS))
}

/// The fields of `POST /director/payments` (`routes::director::payment`); [`PaymentRequest`]
/// adds that exactly one amount is given.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentFields {
    #[schema(schema_with = id)]
    pub organizer_id: String,
    #[schema(schema_with = amount)]
    pub amount: Option<f64>,
    #[schema(schema_with = amount_cents)]
    pub amount_cents: Option<i64>,
    #[schema(schema_with = currency)]
    pub currency: Option<String>,
    #[schema(schema_with = metadata)]
    pub metadata: Option<Value>,
    /// Start no sooner than this (RFC 3339); the task is `scheduled` until then. Not with
    /// `delaySeconds`.
    #[schema(schema_with = start_at)]
    pub run_at: Option<String>,
    /// Start this many seconds from now. Not with `runAt`.
    #[schema(schema_with = delay_seconds)]
    pub delay_seconds: Option<i64>,
}

/// "`name` is given": present and not null (a null counts as absent).
fn given(name: &str, of_type: &str) -> Value {
    json!({"required": [name], "properties": {name: {"type": of_type}}})
}

/// "`name` is not given".
fn not_given(name: &str) -> Value {
    json!({"required": [name], "properties": {name: {"not": {"type": "null"}}}})
}

/// `schema` with "exactly one of `amount` and `amountCents`" (a body's two ways to give a sum).
fn exactly_one_amount(mut schema: RefOr<Schema>) -> RefOr<Schema> {
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.description =
            Some("exactly one of amount, amountCents (a null one counts as absent)".into());
        let mut amount = given("amount", "number");
        amount["not"] = not_given("amountCents");
        let mut cents = given("amountCents", "integer");
        cents["not"] = not_given("amount");
        object
            .extensions
            .get_or_insert_with(Default::default)
            .insert("oneOf".into(), json!([amount, cents]));
    }
    schema
}

/// [`PaymentFields`], exactly one of `amount` and `amountCents`.
pub struct PaymentRequest;

impl PartialSchema for PaymentRequest {
    fn schema() -> RefOr<Schema> {
        exactly_one_amount(PaymentFields::schema())
    }
}

impl ToSchema for PaymentRequest {}

fn date() -> Schema {
    or_empty_or_null(calendar_date())
}
fn report_status() -> Schema {
    AnyOfBuilder::new()
        .item(status_list())
        .item(ArrayBuilder::new().items(one_of_names(&report_statuses())))
        .item(null())
        .into()
}
fn filter_id() -> Schema {
    or_empty_or_null(component("Id"))
}
fn filter_event_type() -> Schema {
    or_empty_or_null(event_type())
}
fn filter_currency() -> Schema {
    or_empty_or_null(component("Currency"))
}
fn filter_sort() -> Schema {
    or_empty_or_null(sort())
}
fn filter_dir() -> Schema {
    or_empty_or_null(dir())
}
fn filter_limit() -> Schema {
    or_null(limit())
}
fn filter_page() -> Schema {
    or_null(page())
}
fn filter_page_size() -> Schema {
    or_null(page_size())
}

/// The report filters of an export, at the top level or nested in `filters`
/// (`routes::exports::FILTERS`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportFilters {
    /// first day (four-digit year: 0000-01-01 to 9999-12-31; anything else is a 400); not after `to`
    #[schema(schema_with = date)]
    pub from: Option<String>,
    /// last day, inclusive (four-digit year: 0000-01-01 to 9999-12-31)
    #[schema(schema_with = date)]
    pub to: Option<String>,
    #[schema(schema_with = report_status)]
    pub status: Option<Value>,
    #[schema(schema_with = filter_id)]
    pub organizer_id: Option<String>,
    #[schema(schema_with = filter_id)]
    pub event_id: Option<String>,
    #[schema(schema_with = filter_event_type)]
    pub event_type: Option<String>,
    #[schema(schema_with = filter_currency)]
    pub currency: Option<String>,
    #[schema(schema_with = filter_sort)]
    pub sort: Option<String>,
    #[schema(schema_with = filter_dir)]
    pub dir: Option<String>,
    #[schema(schema_with = filter_limit)]
    pub limit: Option<i64>,
    #[schema(schema_with = filter_page)]
    pub page: Option<i64>,
    #[schema(schema_with = filter_page_size)]
    pub page_size: Option<i64>,
}

fn report() -> ObjectBuilder {
    one_of_names(&Report::NAMES)
}
fn format() -> ObjectBuilder {
    one_of_names(&Format::NAMES)
}
fn nested_filters() -> Schema {
    or_null(
        AllOfBuilder::new()
            .item(component("ExportFilters"))
            .description(Some(
                "the same filters, nested instead of at the top level (each at most once in all)",
            )),
    )
}
fn notify_emails() -> Schema {
    or_null(array_of(component("Email"), 1, MAX_NOTIFY))
}

/// `POST /director/reports/exports` (`routes::exports::create`): the report, the format,
/// where to send the link, and the filters of [`ExportFilters`] at the top level.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(
    description = "A filter goes at the top level or inside `filters`, not both (null counts as absent). Empty strings in the filters are the same as leaving them out."
)]
pub struct ExportRequest {
    #[schema(schema_with = report)]
    pub report: String,
    #[schema(schema_with = format)]
    pub format: String,
    #[schema(schema_with = nested_filters)]
    pub filters: Option<ExportFilters>,
    #[schema(schema_with = notify_emails)]
    pub notify_emails: Option<Vec<String>>,
    #[schema(schema_with = date)]
    pub from: Option<String>,
    #[schema(schema_with = date)]
    pub to: Option<String>,
    #[schema(schema_with = report_status)]
    pub status: Option<Value>,
    #[schema(schema_with = filter_id)]
    pub organizer_id: Option<String>,
    #[schema(schema_with = filter_id)]
    pub event_id: Option<String>,
    #[schema(schema_with = filter_event_type)]
    pub event_type: Option<String>,
    #[schema(schema_with = filter_currency)]
    pub currency: Option<String>,
    #[schema(schema_with = filter_sort)]
    pub sort: Option<String>,
    #[schema(schema_with = filter_dir)]
    pub dir: Option<String>,
    #[schema(schema_with = filter_limit)]
    pub limit: Option<i64>,
    #[schema(schema_with = filter_page)]
    pub page: Option<i64>,
    #[schema(schema_with = filter_page_size)]
    pub page_size: Option<i64>,
    /// Start no sooner than this (RFC 3339); the task is `scheduled` until then. Not with
    /// `delaySeconds`.
    #[schema(schema_with = start_at)]
    pub run_at: Option<String>,
    /// Start this many seconds from now. Not with `runAt`.
    #[schema(schema_with = delay_seconds)]
    pub delay_seconds: Option<i64>,
}

/// `POST /events/{eventId}/guests/{guestId}/send` (`routes::deliveries::send`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    #[schema(schema_with = channel)]
    pub channel: String,
    #[schema(schema_with = message_kind)]
    pub kind: Option<String>,
    #[schema(schema_with = template)]
    pub template: Option<String>,
    /// Start no sooner than this (RFC 3339); the task is `scheduled` until then. Not with
    /// `delaySeconds`.
    #[schema(schema_with = start_at)]
    pub send_at: Option<String>,
    /// Start this many seconds from now. Not with `sendAt`.
    #[schema(schema_with = delay_seconds)]
    pub delay_seconds: Option<i64>,
}

fn guest_ids() -> Schema {
    or_null(array_of(component("Id"), 1, MAX_GUEST_IDS))
}
fn all() -> Schema {
    or_null(ObjectBuilder::new().schema_type(Type::Boolean))
}

/// The fields of `POST /events/{eventId}/deliveries` (`routes::deliveries::bulk`);
/// [`BulkRequest`] adds that exactly one of `guestIds` and `all: true` is given.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkFields {
    #[schema(schema_with = channel)]
    pub channel: String,
    #[schema(schema_with = message_kind)]
    pub kind: Option<String>,
    #[schema(schema_with = template)]
    pub template: Option<String>,
    #[schema(schema_with = guest_ids)]
    pub guest_ids: Option<Vec<String>>,
    #[schema(schema_with = all)]
    pub all: Option<bool>,
    /// Start no sooner than this (RFC 3339); the task is `scheduled` until then. Not with
    /// `delaySeconds`.
    #[schema(schema_with = start_at)]
    pub run_at: Option<String>,
    /// Start this many seconds from now. Not with `runAt`.
    #[schema(schema_with = delay_seconds)]
    pub delay_seconds: Option<i64>,
}

/// [`BulkFields`], exactly one of `guestIds` (a list) and `all: true`.
pub struct BulkRequest;

impl PartialSchema for BulkRequest {
    fn schema() -> RefOr<Schema> {
        let mut schema = BulkFields::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.description = Some("exactly one of guestIds (a list) or all: true".into());
            let list = json!({
                "required": ["guestIds"],
                "properties": {"all": {"const": false}, "guestIds": {"type": "array"}}
            });
            let everyone = json!({
                "required": ["all"],
                "properties": {"all": {"const": true}},
                "not": {"required": ["guestIds"], "properties": {"guestIds": {"type": "array"}}}
            });
            object
                .extensions
                .get_or_insert_with(Default::default)
                .insert("oneOf".into(), json!([list, everyone]));
        }
        schema
    }
}

impl ToSchema for BulkRequest {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The README's request bodies are bodies of the documented types, and a field the
    /// handlers call "not a known field" is refused by the type too.
    #[test]
    fn the_readme_bodies_are_documented_bodies() {
        let assign: AssignRequest = serde_json::from_value(json!({"organizerId": "org_demo",
            "eventId": "ev_demo", "type": "prepaid", "tickets": 100, "price": 3.5}))
        .unwrap();
        assert_eq!(
            (assign.tickets, assign.assignment_type.as_str()),
            (100, "prepaid")
        );
        let payment: PaymentFields = serde_json::from_value(
            json!({"organizerId": "org_demo", "amount": 1500, "currency": "mxn"}),
        )
        .unwrap();
        assert_eq!(payment.amount, Some(1500.0));
        let export: ExportRequest = serde_json::from_value(json!({"report": "ledger",
            "format": "xlsx", "organizerId": "org_demo", "notifyEmails": ["ana@example.com"]}))
        .unwrap();
        assert_eq!(export.notify_emails.unwrap().len(), 1);
        let send: SendRequest = serde_json::from_value(json!({"channel": "whatsapp"})).unwrap();
        assert_eq!(send.channel, "whatsapp");
        let unknown = serde_json::from_value::<SendRequest>(json!({"channel": "email", "to": "x"}));
        assert!(unknown.is_err());
    }
}

/// The providers this build can use (`jobs::payments::available`): another is a 400.
fn payment_provider() -> Schema {
    let available: Vec<&str> = jobs::payments::Provider::ALL
        .into_iter()
        .filter(|p| jobs::payments::available(*p))
        .map(jobs::payments::Provider::as_str)
        .collect();
    or_null(one_of_names(&available))
}
fn optional_id() -> Schema {
    or_null(component("Id"))
}
fn description() -> Schema {
    or_null(
        super::shapes::string()
            .min_length(Some(1))
            .max_length(Some(crate::routes::payments::MAX_DESCRIPTION_CHARS)),
    )
}

/// The fields of `POST /payments/intent` (`routes::payments::intent`); [`IntentRequest`]
/// adds that exactly one amount is given.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntentFields {
    /// Major units with at most 2 decimals; refused for a currency without minor units
    /// (JPY, CLP, …), whose amounts go in `amountCents` as whole units.
    #[schema(schema_with = amount)]
    pub amount: Option<f64>,
    /// Minor units of the currency (whole units for a currency without them).
    #[schema(schema_with = amount_cents)]
    pub amount_cents: Option<i64>,
    #[schema(schema_with = currency)]
    pub currency: Option<String>,
    /// Default `PAYMENTS_PROVIDER`; one this server cannot use is a 400.
    #[schema(schema_with = payment_provider)]
    pub provider: Option<String>,
    #[schema(schema_with = optional_id)]
    pub organizer_id: Option<String>,
    #[schema(schema_with = description)]
    pub description: Option<String>,
    #[schema(schema_with = metadata)]
    pub metadata: Option<Value>,
    /// Start no sooner than this (RFC 3339); the task is `scheduled` until then. Not with
    /// `delaySeconds`.
    #[schema(schema_with = start_at)]
    pub run_at: Option<String>,
    /// Start this many seconds from now. Not with `runAt`.
    #[schema(schema_with = delay_seconds)]
    pub delay_seconds: Option<i64>,
}

/// [`IntentFields`], exactly one of `amount` and `amountCents`.
pub struct IntentRequest;

impl PartialSchema for IntentRequest {
    fn schema() -> RefOr<Schema> {
        exactly_one_amount(IntentFields::schema())
    }
}

impl ToSchema for IntentRequest {}

/// A cron expression (5 fields, or 6 with seconds first; at most 200 characters): its syntax
/// is checked by the handler, which names `cron` when it does not parse.
fn cron_expr() -> Schema {
    or_null(string().min_length(Some(1)).description(Some(
        "cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first",
    )))
}
fn interval_seconds() -> Schema {
    or_null(integer(1, engine::schedule::cadence::MAX_INTERVAL_SECONDS))
}
/// An IANA time zone name, checked by the handler.
fn time_zone() -> Schema {
    or_null(
        string()
            .min_length(Some(1))
            .description(Some("IANA time zone, e.g. America/Mexico_City")),
    )
}
fn catch_up() -> Schema {
    or_null(one_of_names(&["skip", "all"]))
}
fn max_catch_up() -> Schema {
    or_null(integer(1, 1000))
}
fn paused() -> Schema {
    or_null(ObjectBuilder::new().schema_type(Type::Boolean))
}

/// `PATCH /admin/schedules/{id}` (`routes::schedules::update`): every field optional; `cron`
/// and `intervalSeconds` exclusive; `timeZone` (IANA) only with a cron expression.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulePatchRequest {
    #[schema(schema_with = paused)]
    pub paused: Option<bool>,
    #[schema(schema_with = cron_expr)]
    pub cron: Option<String>,
    #[schema(schema_with = interval_seconds)]
    pub interval_seconds: Option<i64>,
    #[schema(schema_with = time_zone)]
    pub time_zone: Option<String>,
    #[schema(schema_with = catch_up)]
    pub catch_up: Option<String>,
    #[schema(schema_with = max_catch_up)]
    pub max_catch_up: Option<i64>,
}

fn start_at() -> Schema {
    or_null(
        string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::DateTime,
        ))),
    )
}
fn delay_seconds() -> Schema {
    or_null(integer(0, crate::body::MAX_DELAY_SECONDS))
}

/// The rule of [`crate::body::JsonObject::optional_start`] a property list cannot state:
/// `at_field` (`runAt` or `sendAt`) and `delaySeconds` are not both given (non-null).
pub fn not_both_starts(at_field: &str) -> Value {
    json!({"required": [at_field, crate::body::DELAY_SECONDS], "properties": {
        at_field: {"not": {"type": "null"}},
        crate::body::DELAY_SECONDS: {"not": {"type": "null"}}}})
}
