//! The image: its immutable tag, the build context, the build and the push, or the
//! promotion of another environment's image.

pub mod build;
pub mod context;
pub mod existing;
pub mod promote;
pub mod push;
pub mod tag;
