//! A task definition named by ARN (`arn:...:task-definition/family:7`) or by `family:7`:
//! services report either form, and a release is known by its family and revision.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub family: String,
    pub number: i32,
}

impl Revision {
    /// Parses an ARN or `family:revision`; `None` when there is no revision number.
    pub fn parse(name: &str) -> Option<Self> {
        let tail = name.rsplit_once('/').map_or(name, |(_, tail)| tail);
        let (family, number) = tail.rsplit_once(':')?;
        let number = number.parse().ok()?;
        (!family.is_empty()).then(|| Self {
            family: family.to_owned(),
            number,
        })
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.family, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arns_and_short_names() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/agenticai-websocket-dev:12";
        let rev = Revision::parse(arn).expect("arn");
        assert_eq!(
            (rev.family.as_str(), rev.number),
            ("agenticai-websocket-dev", 12)
        );
        assert_eq!(
            Revision::parse("web:3").expect("short").to_string(),
            "web:3"
        );
        assert_eq!(Revision::parse("web"), None);
        assert_eq!(Revision::parse("web:x"), None);
        assert_eq!(Revision::parse(":3"), None);
    }
}
