//! Which git commit a release was built from. `wsctl deploy` records it in the task
//! definition's tags (and the image label `org.opencontainers.image.revision`); revisions made
//! by other tools may only have it in the image tag, which wsctl makes from the commit.

/// The commit recorded on a revision: a tag whose key names a commit, else a docker label,
/// else an image tag that is a commit hash (with an optional `-dirty-...` suffix).
pub fn find<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    image_tag: Option<&str>,
) -> Option<String> {
    let named = |(key, value): (&str, &str)| {
        let key = key.to_ascii_lowercase();
        (key.contains("commit") || key.ends_with("image.revision")) && !value.is_empty()
    };
    tags.into_iter()
        .find(|pair| named(*pair))
        .or_else(|| labels.into_iter().find(|pair| named(*pair)))
        .map(|(_, value)| value.to_owned())
        .or_else(|| {
            image_tag
                .filter(|tag| looks_like_commit(tag))
                .map(str::to_owned)
        })
}

fn looks_like_commit(tag: &str) -> bool {
    let hash = tag.split_once("-dirty").map_or(tag, |(hash, _)| hash);
    (7..=40).contains(&hash.len()) && hash.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_recorded_tag_then_label_then_image_tag() {
        let tags = [("wsctl:env", "dev"), ("wsctl:git-commit", "abc1234")];
        let labels = [("org.opencontainers.image.revision", "def5678")];
        assert_eq!(
            find(tags, labels, Some("0123456")).as_deref(),
            Some("abc1234")
        );
        assert_eq!(
            find([], labels, Some("0123456")).as_deref(),
            Some("def5678")
        );
        assert_eq!(find([], [], Some("0123456")).as_deref(), Some("0123456"));
        assert_eq!(
            find([], [], Some("0123456-dirty-9f8e7d")).as_deref(),
            Some("0123456-dirty-9f8e7d")
        );
        assert_eq!(find([], [], Some("latest")), None);
        assert_eq!(find([], [], Some("20240101-120000")), None);
    }
}
