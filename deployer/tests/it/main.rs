//! wsctl's integration tests, one binary: each test binary is a static link of 50-90 MB, so one
//! instead of twelve saves CI's disk (about 600 MB) and link time. Each module is one area, run
//! against the local services `scripts/services up` starts; `support` is the shared set-up.
//! Run one area with `cargo test -p deployer --test it deploy_e2e::`.

mod support;

mod ci_deploys;
mod ci_role;
mod deploy_auth;
mod deploy_e2e;
mod deploy_failures;
mod deploy_image;
mod deploy_posture;
mod deploy_promote;
mod ground_rollback;
mod ops_interrupt;
mod ops_logs;
mod ops_releases;
mod ops_status;
mod ops_teardown;
mod ops_verdict;
