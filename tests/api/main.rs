//! Duet's integration tests, in one binary: each test spawns its own node on a random port
//! with its own database (SQLite file or Postgres database) and speaks the contract to it.

// A test that meets something unexpected should stop right there, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod formation;
mod private_pg;
mod private_redis_cluster;
mod stream;
mod support;
mod support_process;

mod accounts;
mod album;
mod anniversaries;
mod architecture;
mod breakup;
mod chat;
mod cluster;
mod commit;
mod docs;
mod export;
mod failover;
mod faults;
mod files;
mod gestures;
mod headers;
mod heavy;
mod install;
mod logins;
mod memories;
mod nudge;
mod openapi;
mod operations;
mod pairing;
mod push;
mod question;
mod revocation;
mod scans;
mod search;
mod sharded;
mod socket;
mod voice;
mod words;
