//! Duet's integration tests, in one binary: each test spawns its own node on a random port
//! with its own database (SQLite file or Postgres database) and speaks the contract to it.

mod support;

mod accounts;
mod chat;
mod pairing;
mod socket;
