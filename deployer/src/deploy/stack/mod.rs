//! The service stack: its state before a deploy, the change set that creates or updates it,
//! and the stack events shown while CloudFormation works; `unchanged` skips the change set when
//! the stack already is what it would make.

pub mod changeset;
pub mod events;
pub mod state;
pub mod unchanged;
