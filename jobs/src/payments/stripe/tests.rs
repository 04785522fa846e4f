//! Stripe's API played by wiremock with its exact request shape, and webhook signatures made
//! by an independent implementation (Python's `hmac`), never by the code under test.

mod events;
mod intent;
mod signature;
