//! `wsctl status`: everything an operator checks after a deploy, read in two concurrent waves
//! of AWS calls (`gather`), judged (`findings`) and shown as one screen (`render`) or one JSON
//! document.

pub mod findings;
pub mod gather;
pub mod metrics;
pub mod model;
#[cfg(test)]
mod recorded;
pub mod render;
