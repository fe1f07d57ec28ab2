//! An image reference (`registry/repository:tag` or `...@sha256:...`) split into its parts, so
//! a release can name its tag and digest and its presence can be checked in ECR; digests shown
//! short ([`short_digest`]).

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageRef {
    /// Registry host, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`; empty for Docker Hub.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(image: &str) -> Self {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (image, None),
        };
        // A ':' after the last '/' is a tag; one before it is a registry port.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((host, path))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                (host.to_owned(), path.to_owned())
            }
            _ => (String::new(), name.to_owned()),
        };
        Self {
            registry,
            repository,
            tag,
            digest,
        }
    }

    /// Whether the image lives in an ECR registry, where its presence can be checked.
    pub fn is_ecr(&self) -> bool {
        self.registry.contains(".dkr.ecr.")
    }
}

/// `sha256:` and the first 12 hex digits, enough to tell images apart.
pub fn short_digest(digest: &str) -> String {
    let (algo, hex) = digest.split_once(':').unwrap_or(("", digest));
    let hex: String = hex.chars().take(12).collect();
    if algo.is_empty() {
        hex
    } else {
        format!("{algo}:{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ecr_references() {
        let image = ImageRef::parse(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-dev:3f2a9c1",
        );
        assert_eq!(
            image.registry,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        assert_eq!(image.repository, "agenticai-websocket-dev");
        assert_eq!(image.tag.as_deref(), Some("3f2a9c1"));
        assert_eq!(image.digest, None);
        assert!(image.is_ecr());
    }

    #[test]
    fn splits_digests_ports_and_hub_names() {
        let image = ImageRef::parse("127.0.0.1:5000/team/web@sha256:abc");
        assert_eq!(image.registry, "127.0.0.1:5000");
        assert_eq!(image.repository, "team/web");
        assert_eq!(
            (image.tag, image.digest.as_deref()),
            (None, Some("sha256:abc"))
        );
        assert!(!ImageRef::parse("127.0.0.1:5000/web:1").is_ecr());

        let hub = ImageRef::parse("nginx:1.27");
        assert_eq!(
            (hub.registry.as_str(), hub.repository.as_str()),
            ("", "nginx")
        );
        assert_eq!(hub.tag.as_deref(), Some("1.27"));
    }
}
