//! The image: its immutable tag, the build context, the build and the push.

pub mod build;
pub mod context;
pub mod existing;
pub mod push;
pub mod tag;
