//! The OpenAPI document, derived from the code: each handler carries its operation
//! (`#[utoipa::path]` next to it in `routes::*`), `router` registers a handler and its
//! operation together (`utoipa_axum::routes!`), and the types here state what the
//! validation code accepts, from the constants it uses. [`build`] completes the parts that
//! depend on configuration, once, when the router is built.

pub mod bodies;
pub mod params;
pub mod replies;
pub mod responses;
pub mod schemas;
pub mod shapes;

use utoipa::{
    openapi::{
        path::{Operation, PathItem},
        schema::Schema,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
        OpenApi, RefOr,
    },
    Modify,
};

/// The document's frame: info, the default security, the security schemes and the
/// component schemas the operations refer to by name.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "taquilla",
        version = "0.1.0",
        description = "Back-office job system of a ticketing platform: enqueue work, follow tasks. Every response carries `requestId` (body and `x-request-id`)."
    ),
    security(("bearer" = [])),
    modifiers(&SecuritySchemes),
    components(schemas(
        schemas::ErrorBody,
        schemas::Accepted,
        schemas::Task,
        schemas::Report,
        schemas::StorableJson,
        schemas::StorableObject,
        schemas::Id,
        schemas::Currency,
        schemas::Template,
        schemas::Email,
        bodies::ExportFilters,
    ))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "API_TOKENS: each token acts as a requester, optionally with a role \
                         (`operator`: read-only, every GET including /admin/* and /metrics; \
                         `admin`: may also act) or scopes (`director`, `reports`, \
                         `deliveries`). A route outside the token's role or scopes answers 403.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metaSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Hub-Signature-256",
                "`sha256=<hex>`: HMAC-SHA256 of the raw body with WA_APP_SECRET (Meta's webhook signature)",
            ))),
        );
        components.add_security_scheme(
            "webhookSecret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Webhook-Secret",
                "The shared secret WA_WEBHOOK_SECRET",
            ))),
        );
    }
}

/// The limits that come from configuration, written into the document when it is built.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `API_BODY_LIMIT_BYTES`.
    pub body_bytes: usize,
    /// The longest `?wait=` (`ApiConfig::long_poll_max`).
    pub long_poll_seconds: u64,
    /// Event streams and long-polls one token may hold (`events::Limits::per_requester`).
    pub waiters_per_token: usize,
}

impl Limits {
    /// The defaults of a development setup, for documents built without a configuration.
    pub const EXAMPLE: Limits = Limits {
        body_bytes: 64 * 1024,
        long_poll_seconds: crate::config::LONG_POLL_MAX_SECONDS,
        waiters_per_token: 16,
    };
}

/// Completes the document the router collected: route templates as OpenAPI writes them,
/// one operation id per operation, and the configured limits.
pub fn build(mut doc: OpenApi, limits: Limits) -> OpenApi {
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (openapi_template(&path), item))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations(item) {
            // `security(())` alone reads as one empty requirement; a public route has none.
            if op
                .security
                .as_ref()
                .is_some_and(|s| s.len() == 1 && s[0] == Default::default())
            {
                op.security = Some(Vec::new());
            }
            // The task routes are mounted twice (`/tasks`, `/director/reports/tasks`): the
            // second mount's operations get ids of their own.
            if let Some(id) = op.operation_id.as_mut() {
                if !seen.insert(id.clone()) {
                    *id = format!("{id}{}", path_suffix(path));
                    seen.insert(id.clone());
                }
            }
            for param in op.parameters.iter_mut().flatten() {
                if param.name == "wait" {
                    if let Some(RefOr::T(Schema::Object(schema))) = param.schema.as_mut() {
                        schema.maximum = Some(limits.long_poll_seconds.into());
                    }
                    param.description = Some(format!(
                        "seconds to wait for a change (≤ {})",
                        limits.long_poll_seconds
                    ));
                }
            }
            for (status, response) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                match status.as_str() {
                    "413" => {
                        response.description = format!(
                            "Body over API_BODY_LIMIT_BYTES ({} bytes; every route)",
                            limits.body_bytes
                        )
                    }
                    "429" => {
                        response.description = format!(
                            "This token already holds its maximum of open event streams and \
                             long-polls ({}); close one or retry after `Retry-After` seconds",
                            limits.waiters_per_token
                        )
                    }
                    _ => {}
                }
            }
        }
    }
    // Every body with a start time: its two ways to give one are exclusive.
    for schema in doc
        .components
        .iter_mut()
        .flat_map(|c| c.schemas.values_mut())
    {
        if let RefOr::T(Schema::Object(object)) = schema {
            let at = ["runAt", "sendAt"]
                .into_iter()
                .find(|f| object.properties.contains_key(*f));
            if let (Some(at), true) = (
                at,
                object.properties.contains_key(crate::body::DELAY_SECONDS),
            ) {
                object
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert("not".into(), bodies::not_both_starts(at));
            }
        }
    }
    if let Some(description) = doc.info.description.as_mut() {
        description.push_str(&format!(
            " Request bodies: at most {} bytes (API_BODY_LIMIT_BYTES), larger ones are a 413 \
             on every route.",
            limits.body_bytes
        ));
    }
    doc
}

/// `/files/{*key}` (axum's catch-all) → `/files/{key}`.
fn openapi_template(path: &str) -> String {
    path.replace("{*", "{")
}

/// `/director/reports/tasks/{id}/result` → `_director_reports`: the mount in front of
/// `/tasks`.
fn path_suffix(path: &str) -> String {
    let mount = path.split("/tasks").next().unwrap_or("");
    mount.replace(['/', '-'], "_")
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}
