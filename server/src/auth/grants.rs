//! What a token lets its user do: the `projects` and `queues` claims.

use crate::protocol::{QueueKind, valid_project_id};

/// A claim's list of names, or `["*"]` for everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<T> {
    All,
    Only(Vec<T>),
}

impl<T: PartialEq> Scope<T> {
    fn allows(&self, x: &T) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(v) => v.contains(x),
        }
    }
}

/// The grants of one identity. A claim that is absent grants nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    projects: Scope<String>,
    queues: Scope<QueueKind>,
}

impl Grants {
    /// Every project and every queue: the grants when authentication is off.
    pub fn all() -> Self {
        Self {
            projects: Scope::All,
            queues: Scope::All,
        }
    }

    /// Reads the claims; an unknown queue or an invalid project id refuses the token, so a
    /// typo in an identity provider's mapping shows up at once instead of as `forbidden` later.
    pub fn from_claims(
        projects: Option<Vec<String>>,
        queues: Option<Vec<String>>,
    ) -> Result<Self, String> {
        let projects = match projects {
            Some(p) if p.iter().any(|x| x == "*") => Scope::All,
            Some(p) => {
                if let Some(bad) = p.iter().find(|x| !valid_project_id(x)) {
                    return Err(format!(
                        "claim projects has an invalid project id {:?}",
                        crate::protocol::short(bad)
                    ));
                }
                Scope::Only(p)
            }
            None => Scope::Only(Vec::new()),
        };
        let queues = match queues {
            Some(q) if q.iter().any(|x| x == "*") => Scope::All,
            Some(q) => Scope::Only(
                q.iter()
                    .map(|x| {
                        QueueKind::parse(x).ok_or_else(|| {
                            format!(
                                "claim queues has an unknown queue {:?} ({} or *)",
                                crate::protocol::short(x),
                                QueueKind::ALL.map(QueueKind::as_str).join(", ")
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            None => Scope::Only(Vec::new()),
        };
        Ok(Self { projects, queues })
    }

    /// Whether the token grants `project`.
    pub fn project(&self, project: &str) -> bool {
        match &self.projects {
            Scope::All => true,
            Scope::Only(v) => v.iter().any(|p| p == project),
        }
    }

    /// Whether the token grants `queue`.
    pub fn queue(&self, queue: QueueKind) -> bool {
        self.queues.allows(&queue)
    }

    /// The grants as the `authenticated`/`refreshed` replies list them.
    pub fn projects_list(&self) -> Vec<&str> {
        match &self.projects {
            Scope::All => vec!["*"],
            Scope::Only(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// The granted queues as the client is told them (`["*"]` for all).
    pub fn queues_list(&self) -> Vec<&'static str> {
        match &self.queues {
            Scope::All => vec!["*"],
            Scope::Only(v) => v.iter().map(|q| q.as_str()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Option<Vec<String>> {
        Some(xs.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn claims_grant_what_they_list_and_nothing_when_absent() {
        let g = Grants::from_claims(v(&["p1"]), v(&["dev"])).expect("valid");
        assert!(g.project("p1") && !g.project("p2"));
        assert!(g.queue(QueueKind::Dev) && !g.queue(QueueKind::Ops));
        let none = Grants::from_claims(None, None).expect("valid");
        assert!(!none.project("p1") && !none.queue(QueueKind::Pm));
        let all = Grants::from_claims(v(&["*"]), v(&["*"])).expect("valid");
        assert!(all.project("anything") && all.queue(QueueKind::Qa));
        assert_eq!(all.projects_list(), ["*"]);
    }

    #[test]
    fn an_unknown_queue_refuses_the_token() {
        let e = Grants::from_claims(None, v(&["dev", "prod"])).expect_err("prod is no queue");
        assert!(e.contains("\"prod\""), "{e}");
    }
}
