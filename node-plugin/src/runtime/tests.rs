//! Runtime unit tests.
