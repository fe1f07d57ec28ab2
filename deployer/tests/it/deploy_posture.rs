//! The production posture of a deployed environment, end to end against the AWS emulator: the
//! alarms, the service's deployment alarms with rollback, the dashboard (and its URL in
//! `wsctl status`), the HTTP to HTTPS redirect with a certificate, tasks placed by preflight,
//! `wsctl scale`, and `wsctl exec`'s refusals.

use std::collections::BTreeMap;

use crate::support::stack_outputs as outputs;
use crate::support::*;

fn with_settings(project: &Project, env: &str, main_stack: &str, extra: &str) {
    project.write(
        "wsctl.yaml",
        &format!(
            "build:\n  pre_build: ''\nenvironments:\n  {env}:\n    main_stack: {main_stack}\n    \
             timeout_seconds: 60\n{extra}"
        ),
    );
}

fn run(project: &Project, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    let config = project.config();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().expect("utf-8")]);
    wsctl_with(&all, extra)
}

#[tokio::test(flavor = "multi_thread")]
async fn deployed_stack_alarms_rolls_back_on_them_and_shows_its_dashboard() {
    let config = sdk_config().await;
    let env = unique_env("p");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    // An IAM server certificate: the load balancer accepts it, and the emulator needs no ACM.
    with_settings(
        &project,
        &env,
        &main_stack,
        "    exec: true\n    certificate_arn: arn:aws:iam::123456789012:server-certificate/ws-posture\n",
    );
    let first = deploy_json(&project, &env);
    assert_eq!(first["rollout"]["verdict"], "completed", "{first:#}");
    let service_name = format!("agenticai-websocket-{env}");
    let cluster = format!("agenticai-cluster-{env}");
    let out = outputs(&config, &service_name).await;

    // Every alarm of the stack exists in CloudWatch, named as the AlarmNames output says.
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{service_name}-"))
        .send()
        .await
        .expect("describe alarms");
    let mut found: Vec<&str> = alarms
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .collect();
    found.sort_unstable();
    let mut listed: Vec<&str> = out["AlarmNames"].split(',').collect();
    listed.sort_unstable();
    assert_eq!(found, listed, "the stack's alarms");
    for suffix in [
        "unhealthy-hosts",
        "target-5xx",
        "elb-5xx",
        "response-time",
        "forward-errors",
        "connections-near-cap",
        "slow-clients",
    ] {
        assert!(
            found.contains(&format!("{service_name}-{suffix}").as_str()),
            "{suffix} in {found:?}"
        );
    }
    // The ALB alarms watch this stack's target group and load balancer.
    let tg_arn = &out["TargetGroupArn"];
    let tg_dimension = tg_arn.split(':').nth(5).expect("targetgroup/name/id");
    let unhealthy = alarms
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(format!("{service_name}-unhealthy-hosts").as_str()))
        .expect("unhealthy-hosts alarm");
    assert!(
        unhealthy
            .dimensions()
            .iter()
            .any(|d| d.name() == Some("TargetGroup") && d.value() == Some(tg_dimension)),
        "{unhealthy:?}"
    );
    let forward = alarms
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(format!("{service_name}-forward-errors").as_str()))
        .expect("forward-errors alarm");
    assert_eq!(forward.namespace(), Some("AgenticAI/WebSocket"));
    assert_eq!(forward.metric_name(), Some("ForwardsFailed"));

    // The rollout-relevant ones are the service's deployment alarms, with rollback.
    let ecs = aws_sdk_ecs::Client::new(&config);
    let described = ecs
        .describe_services()
        .cluster(&cluster)
        .services(&service_name)
        .send()
        .await
        .expect("describe service");
    let service = &described.services()[0];
    let deployment_alarms = service
        .deployment_configuration()
        .and_then(|c| c.alarms())
        .expect("deployment alarms on the service");
    assert!(deployment_alarms.enable() && deployment_alarms.rollback());
    let names: Vec<&str> = deployment_alarms
        .alarm_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        out["DeploymentAlarmNames"].split(',').collect::<Vec<_>>()
    );
    assert!(
        names.contains(&format!("{service_name}-target-5xx").as_str())
            && !names.contains(&format!("{service_name}-connections-near-cap").as_str()),
        "release alarms roll back, load alarms do not: {names:?}"
    );
    assert!(service.enable_execute_command(), "exec: true in wsctl.yaml");
    // The default VPC has public subnets only: the tasks go there, with a public IP (the
    // stack's parameters; moto drops the service's network configuration).
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let stack = cfn
        .describe_stacks()
        .stack_name(&service_name)
        .send()
        .await
        .expect("stack");
    let parameters: BTreeMap<&str, &str> = stack.stacks()[0]
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?, p.parameter_value()?)))
        .collect();
    assert_eq!(parameters["AssignPublicIp"], "ENABLED", "{parameters:?}");
    assert_eq!(parameters["TaskSubnetIds"], "", "{parameters:?}");
    assert_eq!(parameters["EnableExecuteCommand"], "true", "{parameters:?}");

    // The dashboard exists, shows the server's and the ALB's metrics, and status links it.
    let dashboard = cloudwatch
        .get_dashboard()
        .dashboard_name(&out["DashboardName"])
        .send()
        .await
        .expect("the dashboard exists");
    let body: serde_json::Value =
        serde_json::from_str(dashboard.dashboard_body().unwrap_or_default()).expect("JSON body");
    let body_text = body.to_string();
    for metric in [
        "OpenConnections",
        "UpdatesDelivered",
        "ForwardsFailed",
        "CPUUtilization",
        "MemoryUtilization",
        "UnHealthyHostCount",
        "HTTPCode_Target_5XX_Count",
        "HTTPCode_ELB_5XX_Count",
        "TargetResponseTime",
    ] {
        assert!(body_text.contains(metric), "{metric} on the dashboard");
    }
    assert!(
        body_text.contains(tg_dimension),
        "this stack's target group"
    );
    let url = &out["DashboardUrl"];
    assert!(
        url.starts_with("https://") && url.ends_with(&format!("#dashboards:name={service_name}")),
        "{url}"
    );
    let status = run(&project, &["status", "--env", &env], &[]);
    let screen = text(&status.stdout);
    assert!(
        screen.contains(&format!("Dashboard    {url}\n")),
        "status shows the dashboard:\n{screen}\n{}",
        text(&status.stderr)
    );

    // With the certificate, plain HTTP only redirects to HTTPS (checkov's CKV_AWS_2 skip says so).
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&out["LoadBalancerArn"])
        .send()
        .await
        .expect("listeners");
    let http = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(80))
        .expect("the HTTP listener");
    let action = &http.default_actions()[0];
    assert_eq!(
        action.r#type().map(|t| t.as_str()),
        Some("redirect"),
        "{http:?}"
    );
    assert_eq!(
        action.redirect_config().and_then(|r| r.protocol()),
        Some("HTTPS")
    );
    assert!(
        listeners.listeners().iter().any(|l| l.port() == Some(443)),
        "the HTTPS listener"
    );

    // wsctl exec explains a missing Session Manager plugin instead of hanging.
    let empty = tempfile::tempdir().expect("tempdir");
    let exec = run(
        &project,
        &["exec", "--env", &env, "--", "ws-server", "--version"],
        &[("PATH", empty.path().to_str().expect("utf-8"))],
    );
    assert_eq!(exec.status.code(), Some(1), "{}", text(&exec.stderr));
    assert!(
        text(&exec.stderr).contains("session-manager-plugin is not on PATH"),
        "{}",
        text(&exec.stderr)
    );

    // Turned off again in the settings, the next deploy turns ECS Exec off on the service, and
    // exec (with a plugin on PATH now) says how to turn it on.
    // (The certificate stays: moto cannot delete an HTTPS listener whose certificate is not in
    // its ACM, which an IAM server certificate never is.)
    with_settings(
        &project,
        &env,
        &main_stack,
        "    certificate_arn: arn:aws:iam::123456789012:server-certificate/ws-posture\n",
    );
    let second = deploy_json(&project, &env);
    assert_eq!(second["rollout"]["verdict"], "completed", "{second:#}");
    let plugin = empty.path().join("session-manager-plugin");
    std::fs::write(&plugin, "#!/bin/sh\nexit 0\n").expect("plugin stand-in");
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        empty.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let exec = run(
        &project,
        &["exec", "--env", &env, "--", "ws-server", "--version"],
        &[("PATH", path.as_str())],
    );
    assert_eq!(exec.status.code(), Some(1), "{}", text(&exec.stderr));
    assert!(
        text(&exec.stderr).contains("ECS Exec is off") && text(&exec.stderr).contains("exec: true"),
        "{}",
        text(&exec.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_changes_the_count_and_waits_for_it() {
    let config = sdk_config().await;
    let env = unique_env("s");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    let first = deploy_json(&project, &env);
    assert_eq!(first["rollout"]["verdict"], "completed", "{first:#}");

    let refused = run(&project, &["scale", "--env", &env], &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("nothing to scale"));

    let out = run(
        &project,
        &[
            "scale", "--env", &env, "--count", "2", "--min", "1", "--max", "3", "--output", "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(result["desired"], 2, "{result:#}");
    assert_eq!(result["min"], 1, "{result:#}");
    assert_eq!(result["max"], 3, "{result:#}");
    assert_eq!(result["verdict"]["verdict"], "completed", "{result:#}");
    let ecs = aws_sdk_ecs::Client::new(&config);
    let described = ecs
        .describe_services()
        .cluster(format!("agenticai-cluster-{env}"))
        .services(format!("agenticai-websocket-{env}"))
        .send()
        .await
        .expect("describe service");
    assert_eq!(described.services()[0].desired_count(), 2);

    // Outside the range it just set: refused before anything changes.
    let out = run(&project, &["scale", "--env", &env, "--count", "5"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("outside the autoscaling range 1..3"),
        "{}",
        text(&out.stderr)
    );
}
