//! The server's integration tests: the real server (in process, or the built `ws-server`
//! binary) on loopback, driven by real WebSocket and HTTP clients, with the local services of
//! `scripts/services` (the AWS emulator, Redis, HAProxy) where a test needs them.
//!
//! One test binary for all of them (`autotests = false` in server/Cargo.toml): each binary is a
//! static link of the whole dependency tree, so one per file cost 50-65 MB of disk and a link
//! each. A new test file is a module here: add `tests/it/NAME.rs` and a `mod NAME;` line below,
//! and take shared helpers from [`common`] (`use crate::common::*;`). Run one file's tests with
//! `cargo test -p server --test it NAME::`.

mod common;

mod abuse;
mod auth;
mod backpressure;
mod bad_input;
mod broker;
mod forward;
mod forward_faults;
mod iam_enforced;
mod limits;
mod shutdown;
mod startup;
mod task_role;
mod websocket;
