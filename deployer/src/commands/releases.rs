//! `wsctl releases`: the rollback targets of an environment, newest first: every ACTIVE task
//! definition revision of the service's family with its image, commit and age, and which one
//! runs now.

use chrono::Utc;

use crate::context::Context;

use crate::exit::Exit;
use crate::live_service;
use crate::release::image::short_digest;
use crate::release::{self, Presence, Release};
use crate::table;
use crate::when;

/// List the releases a rollback can go to.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  $ wsctl releases --env prod
  Releases of agenticai-websocket-prod (newest first, * = running):
       REV  IMAGE TAG  DIGEST               COMMIT   REGISTERED
    *  14   9c1e2f7    sha256:5d41402abc4b  9c1e2f7  2h05m ago
       13   3f2a9c1    sha256:7d793037a076  3f2a9c1  1d02h ago
       12   0b8d4e6    -                    0b8d4e6  3d04h ago  image no longer in the repository
  (a release made by `deploy --image-from` says so: promoted from staging@sha256:5d41402abc4b)

  Roll back with `wsctl rollback --env prod [--revision N]`.")]
pub struct Args {
    /// Show the newest N releases; 0 shows them all.
    #[arg(long, default_value_t = 25, value_name = "N")]
    pub limit: usize,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (env, clients) = (&ctx.env, &ctx.clients);
    let (_, live) = live_service::find(clients, env).await?;
    let family = live.family(env);
    let limit = (args.limit > 0).then_some(args.limit);
    let releases = release::list(
        &clients.ecs,
        &clients.ecr,
        &family,
        live.revision.as_ref(),
        limit,
    )
    .await?;
    let json = serde_json::json!({
        "environment": env.name,
        "family": family,
        "running_revision": live.revision.as_ref().map(|rev| rev.number),
        "releases": releases,
    });
    ctx.print(&json, || render(&family, &releases))?;
    Ok(Exit::Success)
}

fn render(family: &str, releases: &[Release]) -> String {
    if releases.is_empty() {
        return format!("No releases of {family}: no ACTIVE task definition revision.\n");
    }
    let now = Utc::now();
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|r| {
            vec![
                if r.running { "*".into() } else { String::new() },
                r.revision.to_string(),
                r.image_tag.clone().unwrap_or_else(|| "-".into()),
                r.image_digest
                    .as_deref()
                    .map_or_else(|| "-".into(), short_digest),
                r.git_commit.clone().unwrap_or_else(|| "-".into()),
                r.registered_at
                    .map_or_else(|| "-".into(), |t| format!("{} ago", when::age(&t, &now))),
                notes(r),
            ]
        })
        .collect();
    format!(
        "Releases of {family} (newest first, * = running):\n{}",
        table::render(
            "  ",
            &["", "REV", "IMAGE TAG", "DIGEST", "COMMIT", "REGISTERED", ""],
            &rows
        )
    )
}

/// The last column: where a promoted image came from, and a missing image.
fn notes(release: &Release) -> String {
    let mut notes = Vec::new();
    if let Some(origin) = &release.promoted_from {
        let (env, digest) = origin.rsplit_once('@').unwrap_or((origin, ""));
        notes.push(format!("promoted from {env}@{}", short_digest(digest)));
    }
    if matches!(release.image_in_repository, Presence::Missing) {
        notes.push("image no longer in the repository".into());
    }
    notes.join("; ")
}
