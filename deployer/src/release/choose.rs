//! Which release a rollback goes to: the one asked for, or the newest one older than what runs
//! now. Pure, so every refusal is tested.

use crate::exit::{Exit, fail};

/// What the choice can lead to.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// Roll back to this revision.
    Revision(i32),
    /// The requested revision already runs: nothing to do.
    AlreadyRunning(i32),
}

/// `active` are the family's ACTIVE revisions; `running` the service's; `requested` `--revision`.
pub fn choose(
    family: &str,
    active: &[i32],
    running: Option<i32>,
    requested: Option<i32>,
) -> anyhow::Result<Choice> {
    if let Some(wanted) = requested {
        if Some(wanted) == running {
            return Ok(Choice::AlreadyRunning(wanted));
        }
        if !active.contains(&wanted) {
            return Err(fail(
                Exit::Usage,
                format!(
                    "revision {wanted} of {family} is not a release (it does not exist or was \
                     deregistered); `wsctl releases` lists the revisions you can roll back to. \
                     Nothing was changed."
                ),
            ));
        }
        return Ok(Choice::Revision(wanted));
    }
    let Some(running) = running else {
        return Err(fail(
            Exit::Usage,
            "the service's current revision is unknown, so there is no \"previous\" release: \
             name one with --revision N (see `wsctl releases`)",
        ));
    };
    active
        .iter()
        .copied()
        .filter(|r| *r < running)
        .max()
        .map(Choice::Revision)
        .ok_or_else(|| {
            fail(
                Exit::Usage,
                format!(
                    "no release of {family} is older than the running revision {running}; \
                     nothing to roll back to. Nothing was changed."
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::classify;

    #[test]
    fn defaults_to_the_newest_release_before_the_running_one() {
        assert_eq!(
            choose("f", &[5, 4, 2], Some(5), None).expect("4"),
            Choice::Revision(4)
        );
        // After an earlier rollback to 4, "previous" means older than 4, not the newer 5.
        assert_eq!(
            choose("f", &[5, 4, 2], Some(4), None).expect("2"),
            Choice::Revision(2)
        );
    }

    #[test]
    fn a_requested_revision_must_be_an_active_release() {
        assert_eq!(
            choose("f", &[5, 4], Some(5), Some(4)).expect("4"),
            Choice::Revision(4)
        );
        assert_eq!(
            choose("f", &[5, 4], Some(4), Some(5)).expect("5"),
            Choice::Revision(5)
        );
        assert_eq!(
            choose("f", &[5, 4], Some(5), Some(5)).expect("same"),
            Choice::AlreadyRunning(5)
        );
        let err = choose("f", &[5, 4], Some(5), Some(3)).expect_err("3 is gone");
        assert_eq!(classify(&err), Exit::Usage);
        assert!(err.to_string().contains("revision 3 of f"), "{err}");
    }

    #[test]
    fn nothing_older_is_a_refusal() {
        let err = choose("f", &[1], Some(1), None).expect_err("first release");
        assert_eq!(classify(&err), Exit::Usage);
        assert!(
            err.to_string()
                .contains("older than the running revision 1"),
            "{err}"
        );
    }
}
