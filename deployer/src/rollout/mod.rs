//! Watching an ECS rollout until it has an honest outcome. Shared by `deploy`, `rollback` and
//! `status --wait`.
//!
//! - [`verdict`]: a pure function from what ECS reports to one verdict (completed, rolled back,
//!   the release fails, superseded, nothing to run, timed out, still in progress), so the rules
//!   can be tested on recorded responses.
//! - [`wait`]: the polling loop around it that shows service events and target health as they
//!   arrive, fetches the logs of tasks that stopped, retries polls that fail on something
//!   transient, rolls a release that fails fast back when asked to, and stops cleanly on
//!   Ctrl-C.

pub mod alarms;
pub mod verdict;
pub mod wait;

pub use verdict::Verdict;
pub use wait::{Target, wait};
