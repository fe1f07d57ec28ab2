//! The image build, through the Docker Engine API (classic builder): the context tar goes up,
//! the build output streams back. On a terminal the spinner shows the current step; in logs
//! every line is printed. A failed step is shown with its own output, not just "exit 1".

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion};
use futures_util::StreamExt as _;
use serde::Serialize;

use super::context;
use super::tag::ImageTag;
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::progress::{Progress, Step};
use crate::settings::Build;

/// The label that carries the git commit (read back by `wsctl releases`).
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// The local name, `<repository>:<tag>`.
    pub local_ref: String,
    /// The image ID (`sha256:...` of its config).
    pub image_id: String,
    pub steps: usize,
    /// Steps answered from the build cache.
    pub cached_steps: usize,
    pub context_files: usize,
}

/// Builds the image of `build` as `<name>:<tag>`: checks the Dockerfile, packs the context,
/// streams the build (Ctrl-C stops it) and reads back the image ID.
pub async fn build(
    docker: &Docker,
    build: &Build,
    name: &str,
    tag: &ImageTag,
    progress: &Progress,
    interrupt: &Interrupt,
) -> anyhow::Result<Built> {
    let step = progress.step("build image");
    let ctx = pack_context(build, &step).await?;
    let local_ref = format!("{name}:{}", tag.tag);
    let files = ctx.files;
    let (out, step) = run_build(docker, build, tag, &local_ref, ctx, step, interrupt).await?;
    let image_id = match out.image_id.clone() {
        Some(id) => id,
        None => docker
            .inspect_image(&local_ref)
            .await
            .with_context(|| format!("inspecting the built image {local_ref}"))?
            .id
            .unwrap_or_default(),
    };
    step.finish(format!(
        "{local_ref} ({}/{} steps cached)",
        out.cached, out.steps
    ));
    Ok(Built {
        local_ref,
        image_id,
        steps: out.steps,
        cached_steps: out.cached,
        context_files: files,
    })
}

/// The build context as a tar, after checking that the Dockerfile is in it.
async fn pack_context(build: &Build, step: &Step) -> anyhow::Result<context::Context> {
    let dir = build.context.clone();
    let dockerfile = build.dockerfile.clone();
    if !dir.join(&dockerfile).is_file() {
        return Err(fail(
            Exit::Usage,
            format!(
                "no {dockerfile} in the build context {} (set build.context / build.dockerfile \
                 in wsctl.yaml)",
                dir.display()
            ),
        ));
    }
    let ctx = tokio::task::spawn_blocking(move || context::tar(&dir, &dockerfile))
        .await
        .context("packing the build context")??;
    step.detail(format!(
        "context: {} files, {} KiB",
        ctx.files,
        ctx.tar.len() / 1024
    ));
    Ok(ctx)
}

/// Sends the context to the engine and follows the build's output until it ends, fails or
/// is interrupted.
async fn run_build(
    docker: &Docker,
    build: &Build,
    tag: &ImageTag,
    local_ref: &str,
    ctx: context::Context,
    step: Step,
    interrupt: &Interrupt,
) -> anyhow::Result<(Output, Step)> {
    let revision = tag.commit.clone().unwrap_or_else(|| tag.tag.clone());
    // Only a Dockerfile that declares it gets the commit as build argument (Docker warns
    // about arguments nobody consumes).
    let mut args = HashMap::new();
    if declares_revision(&build.context.join(&build.dockerfile)) {
        args.insert("REVISION", revision.as_str());
    }
    let mut labels = HashMap::new();
    if let Some(commit) = &tag.commit {
        labels.insert(REVISION_LABEL, commit.as_str());
    }
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(&build.dockerfile)
        .t(local_ref)
        .rm(true)
        .forcerm(true)
        .buildargs(&args)
        .labels(&labels)
        .version(BuilderVersion::BuilderV1)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(ctx.tar.into())));

    let mut out = Output::default();
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = interrupt.wait() => {
                step.fail("interrupted");
                return Err(fail(Exit::Interrupted, "interrupted during the image build; nothing was changed in AWS"));
            }
        };
        let Some(item) = item else { break };
        let info = match item {
            Ok(info) => info,
            Err(err) => {
                step.fail("failed");
                return Err(out.failure(&err.to_string()));
            }
        };
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            step.fail("failed");
            return Err(out.failure(&detail));
        }
        if let Some(id) = info.aux.and_then(|aux| aux.id) {
            out.image_id = Some(id);
        }
        if let Some(text) = info.stream {
            for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                out.line(line, &step);
            }
        }
    }
    Ok((out, step))
}

fn declares_revision(dockerfile: &std::path::Path) -> bool {
    std::fs::read_to_string(dockerfile).is_ok_and(|text| {
        text.lines().any(|l| {
            let l = l.trim();
            l.len() > 4
                && l[..4].eq_ignore_ascii_case("ARG ")
                && l[4..].trim_start().starts_with("REVISION")
        })
    })
}

/// What the build printed, kept so a failure can show its step's output.
#[derive(Default)]
struct Output {
    steps: usize,
    cached: usize,
    current_step: String,
    step_lines: Vec<String>,
    image_id: Option<String>,
}

impl Output {
    fn line(&mut self, line: &str, step: &Step) {
        if line.starts_with("Step ") {
            self.steps += 1;
            self.current_step = line.to_owned();
            self.step_lines.clear();
        } else {
            if line.contains("Using cache") {
                self.cached += 1;
            }
            self.step_lines.push(line.to_owned());
        }
        step.detail(line);
    }

    fn failure(&self, error: &str) -> anyhow::Error {
        let mut text = String::from("image build failed");
        if !self.current_step.is_empty() {
            text.push_str(&format!(" at {}", self.current_step));
        }
        for line in self.step_lines.iter().rev().take(30).rev() {
            text.push_str(&format!("\n  | {line}"));
        }
        text.push_str(&format!("\n  {error}"));
        fail(Exit::Failure, text)
    }
}
