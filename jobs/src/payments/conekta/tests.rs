//! Conekta's API played by wiremock with its exact request shapes, and `DIGEST` signatures made
//! by an independent implementation (the `openssl` command line), never by the code under test.

mod events;
mod intent;
mod signature;
