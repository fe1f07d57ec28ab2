//! `wsctl deploy`, the flow (being written).

pub mod stack;
