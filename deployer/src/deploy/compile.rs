//! The pre-build command (`build.pre_build` in wsctl.yaml, by default `scripts/stage-image`,
//! which compiles the static server and stages it for the image). Its output streams like the
//! build's, and its time is reported on its own line: compiling dominates a deploy.

use std::process::Stdio;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::settings::Build;

/// Runs `build.pre_build` through `sh -c` in the build context. Nothing to do when empty.
pub async fn run(
    build: &Build,
    progress: &Progress,
    interrupt: &Interrupt,
) -> anyhow::Result<Option<std::time::Duration>> {
    let command = build.pre_build.trim();
    if command.is_empty() {
        return Ok(None);
    }
    let step = progress.step(format!("compile ({command})"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&build.context)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the pre-build command `{command}`"))?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?).lines();
    let mut tail: Vec<String> = Vec::new();
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let line = tokio::select! {
            line = stdout.next_line(), if out_open => line.map(|l| l.ok_or(Pipe::Stdout)),
            line = stderr.next_line(), if err_open => line.map(|l| l.ok_or(Pipe::Stderr)),
            () = interrupt.wait() => {
                let _ = child.kill().await;
                step.fail("interrupted");
                return Err(fail(Exit::Interrupted, "interrupted while compiling; nothing was changed in AWS"));
            }
        };
        match line.context("reading the pre-build output")? {
            Ok(line) => {
                step.detail(&line);
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
            Err(Pipe::Stdout) => out_open = false,
            Err(Pipe::Stderr) => err_open = false,
        }
    }
    let status = child
        .wait()
        .await
        .context("waiting for the pre-build command")?;
    if !status.success() {
        step.fail(format!("exited with {status}"));
        let shown = tail
            .iter()
            .map(|l| format!("\n  | {l}"))
            .collect::<String>();
        return Err(fail(
            Exit::Failure,
            format!("the pre-build command `{command}` failed ({status}):{shown}"),
        ));
    }
    Ok(Some(step.finish("")))
}

/// Which output pipe reached its end.
enum Pipe {
    Stdout,
    Stderr,
}
