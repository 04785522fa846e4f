//! Who may call which route: one table of route templates ([`classify`]) and the middleware
//! that applies it to every request before a handler runs. Roles and scopes are described
//! in `auth` and the README ("Security and roles").

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    auth::{authenticate, Principal, Role, Scope},
    error::ApiError,
    AppState,
};

/// What a route requires, by its template (see [`access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: probes, the document, HMAC-signed file links, the webhook (its own
    /// signature) and `/metrics` (its own token rules, see `routes::metrics`).
    Public,
    /// Any token: task routes, which only show the caller's own tasks.
    Any,
    /// A token with this scope (or without scopes), or an operator reading.
    Scope(Scope),
    /// Operator views: an operator or an admin.
    AdminRead,
    /// Operator actions: an admin.
    Admin,
}

/// A route template with every parameter written `{}` (`/tasks/{id}` → `/tasks/{}`), so the
/// router's names and the document's (`{event_id}`, `{eventId}`) compare equal.
fn shape(route: &str) -> String {
    route
        .split('/')
        .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// The access rule of a route template, `None` for a route this table does not know.
pub fn classify(method: &Method, route: &str) -> Option<Access> {
    let write = !(method == Method::GET || method == Method::HEAD);
    let route = shape(route);
    Some(match route.as_str() {
        "/healthz" | "/readyz" | "/openapi.json" | "/files/{}" | "/wa/webhook" | "/metrics" => {
            Access::Public
        }
        // Providers sign their webhooks; the signature is checked on the raw body.
        "/payments/webhook" | "/payments/webhook/{}" => Access::Public,
        "/payments/intent" | "/payments/{}" => Access::Any,
        "/director/kpis/refresh" => Access::Admin,
        r if r.starts_with("/admin/") => {
            if write {
                Access::Admin
            } else {
                Access::AdminRead
            }
        }
        "/director/assign" | "/director/payments" | "/director/organizers/{}/ledger" => {
            Access::Scope(Scope::Director)
        }
        "/director/overview"
        | "/director/reports/overview"
        | "/director/reports/top-organizers"
        | "/director/reports/debt-aging"
        | "/director/reports/tickets-usage"
        | "/director/reports/exports" => Access::Scope(Scope::Reports),
        "/events/{}/guests/{}/send" | "/events/{}/deliveries" | "/wa/session/{}" => {
            Access::Scope(Scope::Deliveries)
        }
        r if r.starts_with("/tasks/{}") || r.starts_with("/director/reports/tasks/{}") => {
            Access::Any
        }
        _ => return None,
    })
}

/// [`classify`], failing closed: a route missing from the table needs an admin token.
pub fn access(method: &Method, route: &str) -> Access {
    classify(method, route).unwrap_or(Access::Admin)
}

/// Route middleware: authenticates and authorizes every non-public route in one place,
/// and hands the principal to the handler's [`Principal`] extractor.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let access = access(req.method(), &route);
    if access == Access::Public {
        return next.run(req).await;
    }
    let principal = match authenticate(&state.tokens, req.headers())
        .and_then(|p| p.authorize(access, req.method()).map(|()| p))
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

impl Principal {
    /// Whether this principal may call a route of `access` with `method`; the error says why not.
    pub fn authorize(&self, access: Access, method: &Method) -> Result<(), ApiError> {
        let reading = method == Method::GET || method == Method::HEAD;
        match (self.role, access) {
            (_, Access::Public) | (Role::Admin, _) => Ok(()),
            (Role::Operator, Access::Admin) => Err(forbidden("an admin token is required")),
            (Role::Operator, _) if !reading => Err(forbidden(
                "operator tokens are read-only: an admin token is required to act",
            )),
            (Role::Operator, _) => Ok(()),
            (Role::Requester, Access::Admin | Access::AdminRead) => {
                Err(forbidden("an admin or operator token is required"))
            }
            (Role::Requester, Access::Scope(scope)) if !self.has_scope(scope) => {
                Err(forbidden(&format!(
                    "this token is limited to scopes {}; this route needs scope {}",
                    self.scope_names(),
                    scope.as_str()
                )))
            }
            (Role::Requester, _) => Ok(()),
        }
    }
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Tokens;

    #[test]
    fn roles_and_scopes_decide_access() {
        let t = Tokens::parse(
            "admin-token:ops:admin,operator-token:watch:operator,plain-token:demo,reports-token:rep:scopes=reports",
        )
        .unwrap();
        let (get, post) = (Method::GET, Method::POST);
        let who = |tok| t.lookup(tok).unwrap();
        let ok = |tok, access, m: &Method| who(tok).authorize(access, m).is_ok();
        assert!(ok("admin-token", Access::Admin, &post));
        assert!(ok("operator-token", Access::AdminRead, &get));
        assert!(!ok("operator-token", Access::Admin, &post));
        assert!(!ok("operator-token", Access::Scope(Scope::Director), &post));
        assert!(ok("operator-token", Access::Scope(Scope::Reports), &get));
        assert!(!ok("plain-token", Access::AdminRead, &get));
        assert!(ok("plain-token", Access::Scope(Scope::Director), &post));
        assert!(ok("reports-token", Access::Scope(Scope::Reports), &get));
        assert!(!ok("reports-token", Access::Scope(Scope::Director), &post));
        assert!(ok("reports-token", Access::Any, &post));
    }

    #[test]
    fn every_documented_route_has_an_access_rule() {
        let (_, doc) = crate::documented_routes().split_for_parts();
        let doc = serde_json::to_value(crate::openapi::build(doc, crate::openapi::Limits::EXAMPLE))
            .expect("the document serializes");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let Ok(m) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                assert!(
                    classify(&m, path).is_some(),
                    "{method} {path} has no access rule in auth::classify"
                );
            }
        }
    }
}
