//! The component schemas the operations refer to: the error envelope, the 202 of an
//! enqueue, the task view, and the value shapes the validation code accepts (ids, currency
//! codes, template names, e-mail addresses, JSON Postgres can store). Each value shape is
//! built from the constant or rule its check uses, so the document cannot state another
//! limit than the server's.

use std::collections::BTreeMap;

use jobs::kinds::{assignment::MAX_ID_LEN, delivery::MAX_TEMPLATE_LEN};
use serde_json::Value;
use utoipa::{
    openapi::{
        schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type},
        RefOr,
    },
    PartialSchema, ToSchema,
};

use super::shapes::{component, string};
use crate::body::storable::{MAX_DEPTH, MAX_NUMBER};

/// A schema written by hand from the validation code's constants, registered under its
/// type's name.
macro_rules! value_schema {
    ($(#[$doc:meta])* $name:ident => $build:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $build.into()
            }
        }

        impl ToSchema for $name {}
    };
}

/// What `jobs::kinds::assignment::id_problem` accepts.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:-]+$";

value_schema!(
    /// An id of the domain (organizer, event, guest; task kinds too).
    Id => string()
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some(ID_PATTERN))
        .description(Some(format!(
            "1-{MAX_ID_LEN} letters, digits, '_', '-', '.' or ':'"
        )))
);

value_schema!(
    /// What `routes::director::currency_problem` accepts.
    Currency => string()
        .pattern(Some("^[A-Za-z]{3}$"))
        .description(Some("ISO 4217 code, any case; default DEFAULT_CURRENCY"))
);

value_schema!(
    /// What `jobs::kinds::delivery::template_problem` accepts.
    Template => string()
        .pattern(Some(format!("^[a-z0-9_]{{1,{MAX_TEMPLATE_LEN}}}$")))
        .description(Some(format!(
            "template name: 1-{MAX_TEMPLATE_LEN} lowercase letters, digits or '_'"
        )))
);

/// The longest e-mail address `routes::exports` accepts.
pub const MAX_EMAIL_LEN: usize = 254;

value_schema!(
    /// An address `routes::exports::email_check` accepts.
    Email => string()
        .format(Some(utoipa::openapi::SchemaFormat::Custom("email".into())))
        .max_length(Some(MAX_EMAIL_LEN))
);

/// A string without U+0000, which Postgres refuses in `jsonb` (`body::storable`).
fn nul_free_string() -> ObjectBuilder {
    string().pattern(Some("^[^\u{0}]*$"))
}

value_schema!(
    /// Any JSON value `body::storable::problems` lets through.
    StorableJson => AnyOfBuilder::new()
        .description(Some(format!(
            "Any JSON value Postgres can store in `jsonb` and give back: no U+0000 in any string \
             or key, numbers between -{MAX_NUMBER:e} and {MAX_NUMBER:e} (exclusive), objects and \
             arrays nested at most {MAX_DEPTH} levels deep (the request body is level 1). \
             Anything else is a 400 naming the field by its path (`metadata.items[2].note`)."
        )))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(-MAX_NUMBER))
                .exclusive_maximum(Some(MAX_NUMBER)),
        )
        .item(nul_free_string())
        .item(ArrayBuilder::new().items(component("StorableJson")))
        .item(storable_object())
);

/// An object of storable values whose keys hold no U+0000.
fn storable_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .pattern(Some("^[^\u{0}]*$")),
        ))
        .additional_properties(Some(component("StorableJson")))
}

value_schema!(
    /// The body of the webhook and the `metadata` fields: a JSON object of storable values.
    StorableObject => storable_object()
        .description(Some("A JSON object with the limits of `StorableJson`."))
);

/// The error envelope of every refusal (`error::ApiError`, DESIGN §6).
#[derive(ToSchema)]
#[schema(as = Error, rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: ErrorDetail,
    pub request_id: String,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`validation_failed`, `not_found`, …).
    pub code: String,
    pub message: String,
    /// The problem of each field or parameter at fault, by name or path.
    #[schema(required = false)]
    pub fields: BTreeMap<String, String>,
}

/// The 202 of every enqueue (`routes::accepted_with`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Accepted {
    pub task_id: uuid::Uuid,
    pub status: String,
    pub request_id: String,
    pub links: TaskLinks,
    /// The delivery's id (the same as the task's), for deliveries to one guest.
    #[schema(required = false)]
    pub delivery_id: uuid::Uuid,
}

/// Where to follow a task (`routes::links`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct TaskLinks {
    #[schema(rename = "self")]
    pub self_: String,
    pub result: String,
    pub cancel: String,
    pub events: String,
}

fn unreadable_note(what: &str) -> String {
    format!(
        "{what} When the stored JSON cannot be decoded (a row written before the api refused \
         such values), it reads as `{{\"unreadableJson\": {{\"reason\", \"text\"}}}}` with the \
         stored text, and the task still lists."
    )
}

fn task_params() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(unreadable_note("the task's parameters.")))
}

fn task_result() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(unreadable_note("the result of a completed task.")))
}

fn task_error() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(unreadable_note("the last error, if any.")))
}

fn task_errors() -> ArrayBuilder {
    ArrayBuilder::new().description(Some(
        "the error history, oldest first (an unreadable history reads as one `unreadableJson` item).",
    ))
}

/// The engine's statuses, and `scheduled` (`routes::tasks::shown_status`).
fn task_status() -> ObjectBuilder {
    let mut names = engine::TaskStatus::ALL
        .map(engine::TaskStatus::as_str)
        .to_vec();
    names.push(crate::routes::tasks::SCHEDULED);
    super::shapes::one_of_names(&names)
}

fn percent() -> ObjectBuilder {
    super::shapes::integer(0, 100)
}

/// A task as every task route shows it (`routes::tasks::view`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Task {
    pub task_id: uuid::Uuid,
    pub kind: String,
    pub queue: String,
    #[schema(schema_with = task_status)]
    pub status: String,
    #[schema(schema_with = percent)]
    pub progress: i32,
    pub stage: Option<String>,
    /// The live progress message of a running task, when its handler set one.
    #[schema(required = false)]
    pub message: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub cancel_requested: bool,
    #[schema(schema_with = task_params)]
    pub params: Value,
    #[schema(schema_with = task_result, required = false)]
    pub result: Value,
    #[schema(schema_with = task_error)]
    pub error: Value,
    #[schema(schema_with = task_errors)]
    pub errors: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub run_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub links: TaskLinks,
    pub request_id: String,
}

fn report_meta() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Object)
}

fn report_data() -> ArrayBuilder {
    ArrayBuilder::new()
}

/// A dashboard report (`routes::reports::respond`): the cached report object with this
/// request's id.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Report {
    #[schema(schema_with = report_meta, required = false)]
    pub meta: Value,
    #[schema(schema_with = report_data, required = false)]
    pub data: Value,
    pub request_id: String,
}

value_schema!(
    /// A file's bytes.
    Binary => string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
        utoipa::openapi::KnownFormat::Binary,
    )))
);

value_schema!(
    /// A JSON object this document does not detail further.
    AnyObject => ObjectBuilder::new().schema_type(Type::Object)
);
