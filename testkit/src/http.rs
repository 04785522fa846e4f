//! Calling the api in-process: one generic call and a typed helper per endpoint, each
//! answering the status and the JSON body (`Null` when the body is not JSON).

use axum::{
    body::Body,
    http::{Request, Response, StatusCode},
    Router,
};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use crate::{TestApp, ADMIN, DEMO};

/// Status and JSON body of one answer.
pub type Reply = (StatusCode, Value);

/// Largest answer body a test reads (exports' files come through the router too).
const MAX_BODY: usize = 1 << 24;

/// Sends `req` through `router` as a client would.
pub async fn send_request(router: &Router, req: Request<Body>) -> Response<Body> {
    router
        .clone()
        .oneshot(req)
        .await
        .expect("the router answers")
}

/// A `202` enqueue answer, reduced to its task.
pub trait Accepted {
    /// The `taskId` of a `202`; fails the test (showing the body) for any other answer.
    fn task_id(&self) -> Uuid;
}

impl Accepted for Reply {
    fn task_id(&self) -> Uuid {
        let (status, body) = self;
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
        body["taskId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no taskId in {body}"))
    }
}

impl TestApp {
    /// Sends `req` to the app's router.
    pub async fn request(&self, req: Request<Body>) -> Response<Body> {
        send_request(&self.router, req).await
    }

    /// One request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("a valid request");
        reply(self.request(req).await).await
    }

    async fn post_as_demo(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(DEMO), Some(body)).await
    }

    /// `POST /admin/ping` with `token` (no body).
    pub async fn ping(&self, token: &str) -> Reply {
        self.call("POST", "/admin/ping", Some(token), None).await
    }

    /// `POST /director/assign` as the demo requester.
    pub async fn assign(&self, body: Value) -> Reply {
        self.post_as_demo("/director/assign", body).await
    }

    /// `POST /director/payments` as the demo requester.
    pub async fn payment(&self, body: Value) -> Reply {
        self.post_as_demo("/director/payments", body).await
    }

    /// `GET /director/organizers/{organizer}/ledger?{query}` as the demo requester.
    pub async fn ledger(&self, organizer: &str, query: &str) -> Reply {
        let path = format!("/director/organizers/{organizer}/ledger?{query}");
        self.call("GET", &path, Some(DEMO), None).await
    }

    /// `POST /events/{event}/guests/{guest}/send` as the demo requester.
    pub async fn send(&self, event: &str, guest: &str, body: Value) -> Reply {
        self.post_as_demo(&format!("/events/{event}/guests/{guest}/send"), body)
            .await
    }

    /// `POST /events/{event}/deliveries` (a bulk send) as the demo requester.
    pub async fn bulk(&self, event: &str, body: Value) -> Reply {
        self.post_as_demo(&format!("/events/{event}/deliveries"), body)
            .await
    }

    /// `POST /director/reports/exports` as the demo requester.
    pub async fn export(&self, body: Value) -> Reply {
        self.post_as_demo("/director/reports/exports", body).await
    }

    /// `GET /tasks/{id}` as `token`.
    pub async fn get_task(&self, id: Uuid, token: &str) -> Reply {
        self.call("GET", &format!("/tasks/{id}"), Some(token), None)
            .await
    }

    /// `GET /tasks/{id}/result` as `token`.
    pub async fn task_result(&self, id: Uuid, token: &str) -> Reply {
        self.call("GET", &format!("/tasks/{id}/result"), Some(token), None)
            .await
    }

    /// `POST /tasks/{id}/cancel` as `token`.
    pub async fn cancel(&self, id: Uuid, token: &str) -> Reply {
        self.call("POST", &format!("/tasks/{id}/cancel"), Some(token), None)
            .await
    }

    /// `GET /admin/queues` as the admin.
    pub async fn admin_queues(&self) -> Reply {
        self.call("GET", "/admin/queues", Some(ADMIN), None).await
    }

    /// `GET /admin/tasks?{query}` as the admin.
    pub async fn admin_tasks(&self, query: &str) -> Reply {
        self.call("GET", &format!("/admin/tasks?{query}"), Some(ADMIN), None)
            .await
    }

    /// `POST /admin/tasks/{id}/retry` as the admin.
    pub async fn admin_retry(&self, id: Uuid) -> Reply {
        let path = format!("/admin/tasks/{id}/retry");
        self.call("POST", &path, Some(ADMIN), None).await
    }

    /// `POST /admin/tasks/retry?{query}` (re-drive many) as the admin.
    pub async fn admin_retry_all(&self, query: &str) -> Reply {
        let path = format!("/admin/tasks/retry?{query}");
        self.call("POST", &path, Some(ADMIN), None).await
    }

    /// `DELETE /admin/tasks/{id}` as the admin.
    pub async fn admin_delete(&self, id: Uuid) -> Reply {
        let path = format!("/admin/tasks/{id}");
        self.call("DELETE", &path, Some(ADMIN), None).await
    }

    /// `GET /admin/workers` as the admin.
    pub async fn admin_workers(&self) -> Reply {
        self.call("GET", "/admin/workers", Some(ADMIN), None).await
    }

    /// `POST /wa/webhook` with a raw body and extra headers (signatures, secrets).
    pub async fn webhook(&self, headers: &[(&str, &str)], body: &str) -> Reply {
        self.post_raw("/wa/webhook", headers, body).await
    }

    /// `POST /payments/intent` with `token`.
    pub async fn payment_intent(&self, token: &str, body: Value) -> Reply {
        self.call("POST", "/payments/intent", Some(token), Some(body))
            .await
    }

    /// `GET /payments/{id}` with `token`.
    pub async fn get_payment(&self, id: Uuid, token: &str) -> Reply {
        self.call("GET", &format!("/payments/{id}"), Some(token), None)
            .await
    }

    /// A raw JSON body POSTed to `path` with extra headers (signatures, secrets), no token.
    pub async fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut req = Request::post(path).header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Body::from(body.to_string()))
            .expect("a valid request");
        reply(self.request(req).await).await
    }
}

/// Status and JSON body of `resp`.
pub(crate) async fn reply(resp: Response<Body>) -> Reply {
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), MAX_BODY)
        .await
        .expect("the answer's body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
