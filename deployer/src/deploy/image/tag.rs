//! The immutable tag every build gets, so each task definition revision names exactly one
//! image and a rollback means something: the git commit, with `-dirty-<hash of the changes>`
//! when the tree has uncommitted changes (two different dirty builds never share a tag), or a
//! UTC timestamp outside git. The commit also goes into the image label and the task
//! definition's tags, where `wsctl releases` finds it.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageTag {
    /// The tag, e.g. `3f2a9c1` or `3f2a9c1-dirty-8d41e0b2` or `20250101-120000`.
    pub tag: String,
    /// The full commit hash, when built from git.
    pub commit: Option<String>,
    pub dirty: bool,
}

/// The tag for a build of `context`.
pub fn for_context(context: &Path) -> ImageTag {
    match git_state(context) {
        Some((commit, changes)) => from_git(&commit, changes.as_deref()),
        None => ImageTag {
            tag: chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string(),
            commit: None,
            dirty: false,
        },
    }
}

/// `changes`: the uncommitted changes (diff plus untracked files' content), if any.
fn from_git(commit: &str, changes: Option<&[u8]>) -> ImageTag {
    let short = &commit[..commit.len().min(12)];
    match changes {
        Some(changes) => {
            let hash = Sha256::digest(changes);
            let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
            ImageTag {
                tag: format!("{short}-dirty-{hex}"),
                commit: Some(commit.to_owned()),
                dirty: true,
            }
        }
        None => ImageTag {
            tag: short.to_owned(),
            commit: Some(commit.to_owned()),
            dirty: false,
        },
    }
}

fn git(context: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(context)
        .args(args)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// (HEAD commit, uncommitted changes) or `None` outside a git work tree.
fn git_state(context: &Path) -> Option<(String, Option<Vec<u8>>)> {
    let commit = String::from_utf8(git(context, &["rev-parse", "HEAD"])?).ok()?;
    let commit = commit.trim().to_owned();
    let status = git(context, &["status", "--porcelain", "--untracked-files=all"])?;
    if status.is_empty() {
        return Some((commit, None));
    }
    // What differs from HEAD: tracked changes as a diff, untracked files by name and content.
    let mut changes = git(context, &["diff", "HEAD", "--binary"]).unwrap_or_default();
    let top = git(context, &["rev-parse", "--show-toplevel"])
        .and_then(|t| String::from_utf8(t).ok())
        .map(|t| t.trim().to_owned());
    if let (Some(untracked), Some(top)) = (
        git(
            context,
            &[
                "ls-files",
                "--others",
                "--exclude-standard",
                "--full-name",
                ":/",
            ],
        ),
        top,
    ) {
        for name in String::from_utf8_lossy(&untracked).lines() {
            changes.extend_from_slice(name.as_bytes());
            changes.extend(std::fs::read(Path::new(&top).join(name)).unwrap_or_default());
        }
    }
    Some((commit, Some(changes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_dirty_trees_get_distinct_tags() {
        let commit = "3f2a9c1d0e5b4a69788796a5b4c3d2e1f0a9b8c7";
        let clean = from_git(commit, None);
        assert_eq!(clean.tag, "3f2a9c1d0e5b");
        assert!(!clean.dirty);
        let one = from_git(commit, Some(b"change one"));
        let two = from_git(commit, Some(b"change two"));
        assert!(one.tag.starts_with("3f2a9c1d0e5b-dirty-"), "{}", one.tag);
        assert_ne!(one.tag, two.tag);
        assert_eq!(one, from_git(commit, Some(b"change one")));
    }

    #[test]
    fn outside_git_the_tag_is_a_utc_timestamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tag = for_context(dir.path());
        assert_eq!(tag.commit, None);
        assert_eq!(tag.tag.len(), "20250101-120000".len(), "{}", tag.tag);
        assert!(!tag.tag.contains(':'), "tags cannot contain ':'");
    }
}
