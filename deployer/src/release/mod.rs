//! Releases, ecspresso-style: every deploy registers a new revision of the service's task
//! definition family naming an immutable image, so each ACTIVE revision is a release that
//! `wsctl rollback` can return to, as long as its image is still in the repository.

pub mod choose;
pub mod commit;
pub mod image;
pub mod list;
pub mod presence;
pub mod revision;

pub use list::{Release, list, revisions};
pub use presence::Presence;
pub use revision::Revision;
