//! Wompi's API played by wiremock with its JSON request shape, and events checksums computed
//! by an independent implementation (Python's `hashlib`), never by the code under test.

mod events;
mod intent;
mod signature;
