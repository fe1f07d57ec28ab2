//! The one question before a teardown: type the environment's name. Without a terminal there is
//! nobody to ask, so the answer must come from `--yes`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::exit::{Exit, fail};

/// Ok when the operator typed `env` (or `yes` was given); otherwise nothing may change.
pub async fn confirm(env: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            Exit::Usage,
            format!(
                "teardown needs confirmation and there is no terminal to ask on: run it \
                 interactively, or pass --yes to delete environment '{env}' unattended. Nothing \
                 was changed."
            ),
        ));
    }
    let prompt = format!("Type the environment name ({env}) to delete it: ");
    let answer = tokio::task::spawn_blocking(move || {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await??;
    if answer.trim() == env {
        Ok(())
    } else {
        Err(fail(
            Exit::Failure,
            format!(
                "'{}' is not '{env}': teardown cancelled, nothing was changed",
                answer.trim()
            ),
        ))
    }
}
