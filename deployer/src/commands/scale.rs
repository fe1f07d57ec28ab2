//! `wsctl scale`: change how many tasks run now (`--count`) and the autoscaling range
//! (`--min`/`--max`), then wait for the same verdict as a deploy. Checked before anything
//! changes: a count outside the range autoscaling keeps would be undone by it within minutes.
//!
//! The stack's MinTasks/MaxTasks (from wsctl.yaml) return on the next deploy that changes
//! them; put lasting values in the settings file.

use std::time::{Duration, SystemTime};

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::context::Context;

use crate::exit::{Exit, fail};

use crate::live_service;
use crate::rollout;

/// Change the number of tasks now, or the autoscaling range.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  $ wsctl scale --env prod --count 4            # four tasks now (within the autoscaling range)
  $ wsctl scale --env prod --min 2 --max 10     # autoscaling between 2 and 10 tasks
  $ wsctl scale --env prod --count 0 --min 0    # stop every task (the environment stays)

Lasting values belong in wsctl.yaml (desired_count, min_tasks, max_tasks): a deploy that
changes them there sets the stack's range again.

Exit codes: 0 the tasks run, 1 failed or refused (nothing changed), 2 bad usage, 4 timed out,
5 no such environment, 6 another operation holds the environment's lock, 130 interrupted.")]
pub struct Args {
    /// Tasks to run now.
    #[arg(long, value_name = "N")]
    pub count: Option<i32>,
    /// Fewest tasks autoscaling keeps.
    #[arg(long, value_name = "N")]
    pub min: Option<i32>,
    /// Most tasks autoscaling starts.
    #[arg(long, value_name = "N")]
    pub max: Option<i32>,
    /// How long to wait for the tasks, in seconds (default: the environment's timeout).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// How long to wait while another operation holds the environment's lock (e.g. 10m);
    /// by default a held lock fails at once (exit 6, naming the holder).
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = crate::lock::parse_wait)]
    pub lock_wait: std::time::Duration,
}

/// The autoscaling range: (min, max).
pub type Range = (i32, i32);

#[derive(Debug, Serialize)]
struct Outcome<'a> {
    environment: &'a str,
    service: &'a str,
    desired: i32,
    min: Option<i32>,
    max: Option<i32>,
    deployment_id: String,
    verdict: &'a rollout::Verdict,
    elapsed_seconds: f64,
}

/// What to change: the new desired count (if any) and the new range (if any).
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub desired: Option<i32>,
    pub range: Option<Range>,
}

/// Checks the request against the current range; nothing is sent yet.
pub fn plan(args: &Args, current: Option<Range>) -> anyhow::Result<Plan> {
    if args.count.is_none() && args.min.is_none() && args.max.is_none() {
        return Err(fail(
            Exit::Usage,
            "nothing to scale: give --count N, or --min/--max for autoscaling",
        ));
    }
    for (name, value) in [
        ("--count", args.count),
        ("--min", args.min),
        ("--max", args.max),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(fail(Exit::Usage, format!("{name} must be 0 or more")));
        }
    }
    let range = match (args.min, args.max, current) {
        (None, None, _) => None,
        (min, max, Some((cur_min, cur_max))) => {
            Some((min.unwrap_or(cur_min), max.unwrap_or(cur_max)))
        }
        (Some(min), Some(max), None) => Some((min, max)),
        (_, _, None) => {
            return Err(fail(
                Exit::Failure,
                "the service has no autoscaling range yet (no scalable target): give both \
                 --min and --max",
            ));
        }
    };
    if let Some((min, max)) = range
        && min > max
    {
        return Err(fail(
            Exit::Usage,
            format!("--min {min} is above --max {max}"),
        ));
    }
    if let (Some(count), Some((min, max))) = (args.count, range.or(current))
        && (count < min || count > max)
    {
        return Err(fail(
            Exit::Usage,
            format!(
                "--count {count} is outside the autoscaling range {min}..{max}, which would \
                     move it back within minutes: widen the range too (--min/--max)"
            ),
        ));
    }
    Ok(Plan {
        desired: args.count,
        range,
    })
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (env, clients) = (&ctx.env, &ctx.clients);
    let autoscaling = &clients.autoscaling;
    let (_, live) = live_service::find(clients, env).await?;
    let resource = format!("service/{}/{}", live.cluster, live.name);
    let current = scalable_range(autoscaling, &resource).await?;
    let plan = plan(&args, current)?;
    // Released when dropped: before the result, or however the command ends.
    let lock = crate::lock::take(
        clients,
        env,
        "scale",
        None,
        args.lock_wait,
        &ctx.progress,
        ctx.interrupt(),
    )
    .await?;

    if let Some((min, max)) = plan.range {
        autoscaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(&resource)
            .min_capacity(min)
            .max_capacity(max)
            .send()
            .await
            .aws_context(|| {
                format!(
                    "setting the autoscaling range of {} to {min}..{max}",
                    live.name
                )
            })?;
        eprintln!("Autoscaling range of {}: {min}..{max} tasks", live.name);
    }
    let since = SystemTime::now();
    let mut request = clients
        .ecs
        .update_service()
        .cluster(&live.cluster)
        .service(&live.name);
    if let Some(count) = plan.desired {
        request = request.desired_count(count);
    }
    let updated = request
        .send()
        .await
        .aws_context(|| format!("updating the desired count of {}", live.name))?;
    let service = updated.service();
    let desired = service.map_or(0, |s| s.desired_count());
    let deployment_id = live_service::primary_deployment(service);
    if let Some(count) = plan.desired {
        eprintln!("Scaling {} to {count} task(s)", live.name);
    }
    let target = rollout::Target::on(
        &live,
        deployment_id,
        args.timeout.map_or(env.timeout, Duration::from_secs),
        since,
    );
    let report = rollout::wait(clients, &target, &ctx.progress, ctx.interrupt()).await?;
    drop(lock);
    let outcome = Outcome {
        environment: &env.name,
        service: &live.name,
        desired,
        min: plan.range.map(|r| r.0),
        max: plan.range.map(|r| r.1),
        deployment_id: report.deployment_id.clone(),
        verdict: &report.verdict,
        elapsed_seconds: report.elapsed.as_secs_f64(),
    };
    ctx.print(&outcome, || {
        format!("{}: {}\n", live.name, report.verdict.describe())
    })?;
    if let Some(hint) = rollout::wait::resume_hint(&env.name, &report) {
        eprintln!("{hint}");
    }
    Ok(report.exit())
}

/// The service's autoscaling range, if it has a scalable target.
async fn scalable_range(
    autoscaling: &aws_sdk_applicationautoscaling::Client,
    resource: &str,
) -> anyhow::Result<Option<Range>> {
    let out = autoscaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(resource)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .aws_context(|| "reading the autoscaling range (DescribeScalableTargets)")?;
    Ok(out
        .scalable_targets()
        .first()
        .map(|t| (t.min_capacity(), t.max_capacity())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(count: Option<i32>, min: Option<i32>, max: Option<i32>) -> Args {
        Args {
            count,
            min,
            max,
            timeout: None,
            lock_wait: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn a_count_inside_the_range_is_planned_as_is() {
        let plan = plan(&args(Some(3), None, None), Some((1, 4))).expect("fits");
        assert_eq!(
            plan,
            Plan {
                desired: Some(3),
                range: None
            }
        );
    }

    #[test]
    fn a_count_outside_the_range_is_refused_unless_the_range_moves_too() {
        let err = plan(&args(Some(6), None, None), Some((1, 4))).expect_err("outside");
        assert!(
            err.to_string()
                .contains("outside the autoscaling range 1..4"),
            "{err}"
        );
        assert_eq!(crate::exit::classify(&err), Exit::Usage);
        let plan = plan(&args(Some(6), None, Some(8)), Some((1, 4))).expect("widened");
        assert_eq!(plan.range, Some((1, 8)));
    }

    #[test]
    fn nothing_asked_or_an_upside_down_range_is_a_usage_error() {
        let err = plan(&args(None, None, None), Some((1, 4))).expect_err("nothing");
        assert!(err.to_string().contains("nothing to scale"), "{err}");
        let err = plan(&args(None, Some(5), Some(2)), None).expect_err("min > max");
        assert!(
            err.to_string().contains("--min 5 is above --max 2"),
            "{err}"
        );
        let err = plan(&args(None, Some(2), None), None).expect_err("half a range");
        assert!(err.to_string().contains("give both"), "{err}");
    }
}
