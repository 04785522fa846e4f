//! Small constructors for the JSON Schema shapes the document repeats (a string among
//! names, a bounded integer, "or null", "or an empty string"), so every limit is written
//! once, from the constants the validation code uses.

use utoipa::openapi::{
    schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type},
    RefOr,
};

/// One of `names`, exactly (JSON Schema `enum`, no `type`: any other value is refused).
pub fn one_of_names(names: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .enum_values(Some(names.iter().copied()))
}

pub fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A whole number within `min..=max`.
pub fn integer(min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
}

/// An amount of money in major units: at most 2 decimals.
pub fn money() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .multiple_of(Some(0.01))
        .description(Some("major units, at most 2 decimals"))
}

/// The empty string, which query parameters treat as "not given" (`routes::query_value`).
pub fn empty_string() -> ObjectBuilder {
    string().max_length(Some(0))
}

pub fn null() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Null)
}

/// `schema`, or null: optional body fields where null means "not given" (`JsonObject::has`).
pub fn or_null(schema: impl Into<RefOr<Schema>>) -> Schema {
    AnyOfBuilder::new().item(schema).item(null()).into()
}

/// `schema`, or the empty string ("not given").
pub fn or_empty(schema: impl Into<RefOr<Schema>>) -> Schema {
    AnyOfBuilder::new().item(schema).item(empty_string()).into()
}

/// `schema`, the empty string or null: body filters, read like query parameters.
pub fn or_empty_or_null(schema: impl Into<RefOr<Schema>>) -> Schema {
    AnyOfBuilder::new()
        .item(schema)
        .item(empty_string())
        .item(null())
        .into()
}

pub fn array_of(items: impl Into<RefOr<Schema>>, min: usize, max: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(items.into())
        .min_items(Some(min))
        .max_items(Some(max))
}

/// A reference to the component schema `name`.
pub fn component(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}
