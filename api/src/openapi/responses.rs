//! The answers the routes share, one type per status and meaning, so each operation lists
//! its statuses by name. Every refusal has the JSON envelope [`ErrorBody`]. The descriptions
//! that depend on configuration (the body limit, the waiters per token) are completed when
//! the document is built (`openapi::build`).

use utoipa::IntoResponses;

use super::schemas::{Accepted, Task};
pub use super::schemas::{AnyObject, Binary, ErrorBody};

/// One response type: `$name` answers `$status` with `$body`.
macro_rules! response {
    ($(#[$doc:meta])* $name:ident, $status:literal, $description:literal, $body:ty) => {
        $(#[$doc])*
        #[derive(IntoResponses)]
        #[response(status = $status, description = $description)]
        pub struct $name(pub $body);
    };
}

response!(
    /// The 202 of an enqueue; the same answer when the Idempotency-Key and body repeat.
    TaskAccepted, 202,
    "Task created (or replayed for the same Idempotency-Key and body); `Location: /tasks/{id}`",
    Accepted
);
response!(TaskView, 200, "The task", Task);
response!(
    Invalid,
    400,
    "Invalid input; `error.fields` names each field at fault",
    ErrorBody
);
response!(
    Unauthorized,
    401,
    "Missing or unknown bearer token",
    ErrorBody
);
response!(
    /// A route outside the token's role or scopes (`access`).
    OutOfScope, 403,
    "The token's role or scopes do not cover this route (operator tokens are read-only; a scoped token reaches only its scopes)",
    ErrorBody
);
response!(NotAdmin, 403, "Not an admin token", ErrorBody);
response!(
    IdempotencyConflict,
    409,
    "Idempotency-Key reused with another body",
    ErrorBody
);
response!(
    /// Every route; completed with the configured limit when the document is built.
    TooLarge, 413, "Body over API_BODY_LIMIT_BYTES (every route)", ErrorBody
);
response!(NotJson, 415, "Not JSON", ErrorBody);
response!(
    /// Completed with the configured limit when the document is built.
    TooManyWaiters, 429,
    "This token already holds its maximum of open event streams and long-polls; close one or retry after `Retry-After` seconds",
    ErrorBody
);
response!(
    PostgresDown,
    503,
    "Postgres unavailable (Retry-After)",
    ErrorBody
);
response!(
    StoreDown,
    503,
    "Postgres or Redis is unreachable (Retry-After)",
    ErrorBody
);
response!(
    NoSuchTask,
    404,
    "No such task for this requester",
    ErrorBody
);
response!(
    NoSuchPayment,
    404,
    "No such payment for this requester",
    ErrorBody
);
