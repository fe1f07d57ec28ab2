//! `wsctl status` against the AWS emulator: a deployed environment in text and JSON, its
//! alarms and last hour from CloudWatch, one rolled back to an older release, and one that
//! does not exist.

use crate::support::{Deployed, stderr, stdout, unique_env, wsctl};

#[tokio::test]
async fn status_of_a_deployed_environment_in_text_and_json() {
    let env = unique_env("st");
    let deployed = Deployed::create(&env, "one").await;
    let second = deployed.release("two").await;
    let revision = second.rsplit(':').next().expect("revision").to_owned();
    let tag = deployed.tag("two");

    let out = wsctl(&["status", "--env", &env]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let service = format!("agenticai-websocket-{env}");
    for expected in [
        format!("Environment  {env} (us-east-1)"),
        format!("Stack        {service}  UPDATE_COMPLETE"),
        format!("Service      {service}  ACTIVE  desired 1  running 1  pending 0"),
        format!(
            "Release      revision {revision}  {}  commit {tag}",
            deployed.image("two")
        ),
        "Endpoint     ws://".to_owned(),
        "PRIMARY  COMPLETED".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains("(none running)") && !text.contains("(none registered)"),
        "the running count has its tasks and targets:\n{text}"
    );

    let out = wsctl(&["status", "--env", &env, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["environment"], env.as_str());
    assert_eq!(json["stack"]["status"], "UPDATE_COMPLETE");
    assert_eq!(json["service"]["desired"], 1);
    assert_eq!(json["service"]["running"], 1);
    assert_eq!(json["release"]["revision"].to_string(), revision);
    assert_eq!(json["release"]["image_tag"], tag.as_str());
    assert_eq!(json["latest_revision"].to_string(), revision);
    let first = deployed.summary("one")["task_definition"]
        .as_str()
        .and_then(|td| td.rsplit(':').next())
        .expect("first revision")
        .to_owned();
    assert_ne!(first, revision);
    assert_eq!(
        json["stack_revision"].to_string(),
        first,
        "the stack's own revision stays the first release's"
    );
    assert_eq!(json["deployments"][0]["rollout_state"], "COMPLETED");
    let tasks = json["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1, "one task for running 1: {json}");
    assert_eq!(tasks[0]["revision"].to_string(), revision, "{json}");
    assert_eq!(tasks[0]["last_status"], "RUNNING", "{json}");
    let targets = json["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "its target only: {json}");
    assert_eq!(targets[0]["state"], "healthy", "{json}");
    assert_eq!(targets[0]["port"], 8080, "{json}");
    assert!(
        json["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("ws://") && e.ends_with("/ws"))
    );
    assert!(
        json["findings"].as_array().is_some_and(Vec::is_empty),
        "{json}"
    );
    assert_eq!(json["healthy"], true);
}

#[tokio::test]
async fn status_shows_a_firing_alarm_and_the_last_hour_from_cloudwatch() {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, StateValue};

    let env = unique_env("sa");
    let deployed = Deployed::create(&env, "one").await;
    let service = deployed.service();
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&deployed.config);
    let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    let alarm = format!("{service}-cpu-high");
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm)
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .dimensions(dimension("ClusterName", &deployed.cluster()))
        .dimensions(dimension("ServiceName", &service))
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(80.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put the alarm");
    cloudwatch
        .set_alarm_state()
        .alarm_name(&alarm)
        .state_value(StateValue::Alarm)
        .state_reason("Threshold Crossed: 1 datapoint [93.0] was greater than 80.0")
        .send()
        .await
        .expect("set the alarm firing");
    for (metric, value) in [("CPUUtilization", 93.0), ("MemoryUtilization", 41.0)] {
        cloudwatch
            .put_metric_data()
            .namespace("AWS/ECS")
            .metric_data(
                MetricDatum::builder()
                    .metric_name(metric)
                    .dimensions(dimension("ClusterName", &deployed.cluster()))
                    .dimensions(dimension("ServiceName", &service))
                    .timestamp(aws_smithy_types::DateTime::from(
                        std::time::SystemTime::now() - std::time::Duration::from_secs(120),
                    ))
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("put a data point");
    }

    let out = wsctl(&["status", "--env", &env, "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    // The stack has more alarms (posture); this one is firing.
    let firing = json["alarms"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["name"] == alarm.as_str()))
        .unwrap_or_else(|| panic!("{alarm} in {json}"));
    assert_eq!(firing["state"], "ALARM", "{json}");
    assert_eq!(
        json["healthy"], false,
        "a firing alarm needs attention: {json}"
    );
    assert!(
        json["unavailable"].as_array().is_none_or(Vec::is_empty),
        "CloudWatch answered: {json}"
    );
    let cpu = json["metrics"]["cpu"].to_string();
    assert!(cpu.contains("93"), "the CPU data point: {json}");
    let text = stdout(&wsctl(&["status", "--env", &env]));
    assert!(text.contains(&alarm) && text.contains("ALARM"), "{text}");
}

#[tokio::test]
async fn status_says_when_a_newer_release_is_not_running() {
    let env = unique_env("sr");
    let deployed = Deployed::create(&env, "one").await;
    let second = deployed.release("two").await;
    let third = deployed.release("three").await;
    let number = |td: &str| td.rsplit(':').next().expect("revision").to_owned();
    // Someone went back to revision 2 by hand.
    deployed
        .ecs()
        .update_service()
        .cluster(deployed.cluster())
        .service(deployed.service())
        .task_definition(&second)
        .send()
        .await
        .expect("update");

    let out = wsctl(&["status", "--env", &env, "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["release"]["revision"].to_string(), number(&second));
    assert_eq!(json["latest_revision"].to_string(), number(&third));
    let notes = json["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "running revision {} but revision {} is newer",
            number(&second),
            number(&third)
        )),
        "{notes}"
    );
    assert_eq!(
        json["healthy"], true,
        "a rollback is worth a note, not an alarm: {json}"
    );
    let text = stdout(&wsctl(&["status", "--env", &env]));
    assert!(
        text.contains(&format!(
            "revision {} is newer (rolled back)",
            number(&third)
        )),
        "{text}"
    );
}

#[tokio::test]
async fn status_of_a_missing_environment_is_not_found() {
    let env = unique_env("sm");
    let out = wsctl(&["status", "--env", &env]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("environment '{env}' not found"))
            && err.contains(&format!("wsctl deploy --env {env}")),
        "{err}"
    );
    let json = wsctl(&["status", "--env", &env, "-o", "json"]);
    assert_eq!(json.status.code(), Some(5));
}
