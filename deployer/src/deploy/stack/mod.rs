//! The service stack: its state before a deploy, the change set that creates or updates it,
//! and the stack events shown while CloudFormation works.

pub mod changeset;
pub mod events;
pub mod state;
