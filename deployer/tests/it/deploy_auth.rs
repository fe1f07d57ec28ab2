//! Authentication as deployed, against the AWS emulator: the load balancer answers
//! `POST /publish` only from the VPC, plain HTTP redirects to HTTPS once a certificate is set,
//! the task gets the generated JWT signing key as a secret (never plain environment), and
//! `wsctl token` mints tokens with it; an environment on a JWKS gets no secret and no token.

use std::collections::BTreeMap;

use crate::support::*;
use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, Rule};
use serde_json::Value;

/// An IAM server certificate: a certificate the load balancer accepts that the emulator needs
/// no ACM import for.
const CERTIFICATE: &str = "arn:aws:iam::123456789012:server-certificate/ws-test";

/// Deploys `env` (its own main stack) with the wsctl.yaml lines `extra` under the environment.
async fn deployed(config: &aws_config::SdkConfig, env: &str, extra: &str) -> Project {
    let main_stack = format!("main-{env}");
    create_main_stack(config, &main_stack, env).await;
    let project = Project::new(env, &main_stack, TINY_DOCKERFILE);
    project.write(
        "wsctl.yaml",
        &format!(
            "build:\n  pre_build: ''\nenvironments:\n  {env}:\n    main_stack: {main_stack}\n    \
             timeout_seconds: 60\n{extra}"
        ),
    );
    let summary = deploy_json(&project, env);
    assert_eq!(summary["rollout"]["verdict"], "completed", "{summary:#}");
    project
}

async fn outputs(config: &aws_config::SdkConfig, env: &str) -> BTreeMap<String, String> {
    stack_outputs(config, &format!("agenticai-websocket-{env}")).await
}

/// The container of the revision the service runs.
async fn container(
    config: &aws_config::SdkConfig,
    outputs: &BTreeMap<String, String>,
) -> aws_sdk_ecs::types::ContainerDefinition {
    let ecs = aws_sdk_ecs::Client::new(config);
    let service = ecs
        .describe_services()
        .cluster(&outputs["ECSClusterName"])
        .services(&outputs["WebSocketServiceName"])
        .send()
        .await
        .expect("the service");
    let td = service.services()[0].task_definition().expect("a revision");
    let described = ecs
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .expect("the revision");
    described
        .task_definition()
        .expect("td")
        .container_definitions()[0]
        .clone()
}

fn environment(c: &aws_sdk_ecs::types::ContainerDefinition) -> BTreeMap<String, String> {
    c.environment()
        .iter()
        .filter_map(|kv| Some((kv.name()?.to_owned(), kv.value()?.to_owned())))
        .collect()
}

fn secrets(c: &aws_sdk_ecs::types::ContainerDefinition) -> BTreeMap<String, String> {
    c.secrets()
        .iter()
        .map(|s| (s.name().to_owned(), s.value_from().to_owned()))
        .collect()
}

/// The listener on `port` of the stack's load balancer: (ARN, its default action).
async fn listener(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    outputs: &BTreeMap<String, String>,
    port: i32,
) -> (String, aws_sdk_elasticloadbalancingv2::types::Action) {
    let out = elb
        .describe_listeners()
        .load_balancer_arn(&outputs["LoadBalancerArn"])
        .send()
        .await
        .expect("listeners");
    let l = out
        .listeners()
        .iter()
        .find(|l| l.port() == Some(port))
        .unwrap_or_else(|| panic!("no listener on {port}: {:?}", out.listeners()));
    (
        l.listener_arn().expect("arn").to_owned(),
        l.default_actions()[0].clone(),
    )
}

/// The listener's rules for `/publish`, lowest priority number (evaluated first) first.
async fn publish_rules(elb: &aws_sdk_elasticloadbalancingv2::Client, listener: &str) -> Vec<Rule> {
    let out = elb
        .describe_rules()
        .listener_arn(listener)
        .send()
        .await
        .expect("rules");
    let mut rules: Vec<Rule> = out
        .rules()
        .iter()
        .filter(|r| {
            r.conditions().iter().any(|c| {
                c.path_pattern_config()
                    .is_some_and(|p| p.values() == ["/publish"])
            })
        })
        .cloned()
        .collect();
    rules.sort_by_key(|r| r.priority().and_then(|p| p.parse::<u32>().ok()));
    rules
}

/// The VPC-only publish rule pair: from `cidrs` forwarded to the service, else 403.
fn assert_publish_only_from(rules: &[Rule], cidrs: &[String], target_group: &str) {
    assert_eq!(rules.len(), 2, "{rules:#?}");
    let from_vpc = &rules[0];
    let source = from_vpc
        .conditions()
        .iter()
        .find_map(|c| c.source_ip_config())
        .expect("the first /publish rule matches on the source IP");
    assert_eq!(source.values(), cidrs);
    let action = &from_vpc.actions()[0];
    assert_eq!(action.r#type(), Some(&ActionTypeEnum::Forward));
    assert_eq!(action.target_group_arn(), Some(target_group));

    let elsewhere = &rules[1];
    assert!(
        elsewhere
            .conditions()
            .iter()
            .all(|c| c.source_ip_config().is_none()),
        "the second rule takes every other source"
    );
    let action = &elsewhere.actions()[0];
    assert_eq!(action.r#type(), Some(&ActionTypeEnum::FixedResponse));
    assert_eq!(
        action.fixed_response_config().and_then(|f| f.status_code()),
        Some("403")
    );
}

async fn default_vpc_cidrs(config: &aws_config::SdkConfig) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let out = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("is-default")
                .values("true")
                .build(),
        )
        .send()
        .await
        .expect("vpcs");
    vec![out.vpcs()[0].cidr_block().expect("a CIDR").to_owned()]
}

fn token(project: &Project, env: &str, args: &[&str]) -> std::process::Output {
    let config = project.config();
    let mut all = vec![
        "token",
        "--env",
        env,
        "--config",
        config.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    wsctl_with(&all, &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_certificate_http_redirects_publish_is_vpc_only_and_tokens_use_the_stacks_secret() {
    let config = sdk_config().await;
    let env = unique_env("a");
    let project = deployed(
        &config,
        &env,
        &format!(
            "    certificate_arn: {CERTIFICATE}\n    jwt:\n      issuer: https://issuer.test\n"
        ),
    )
    .await;
    let outputs = outputs(&config, &env).await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);

    // Plain HTTP only redirects (301 to HTTPS on 443) and carries no rules of its own.
    let (http, redirect) = listener(&elb, &outputs, 80).await;
    assert_eq!(redirect.r#type(), Some(&ActionTypeEnum::Redirect));
    let to = redirect.redirect_config().expect("redirect config");
    assert_eq!(
        (
            to.protocol(),
            to.port(),
            to.status_code().map(|s| s.as_str())
        ),
        (Some("HTTPS"), Some("443"), Some("HTTP_301"))
    );
    assert!(publish_rules(&elb, &http).await.is_empty());
    // HTTPS serves, with POST /publish for the VPC only.
    let (https, serve) = listener(&elb, &outputs, 443).await;
    assert_eq!(serve.r#type(), Some(&ActionTypeEnum::Forward));
    let cidrs = default_vpc_cidrs(&config).await;
    assert_publish_only_from(
        &publish_rules(&elb, &https).await,
        &cidrs,
        &outputs["TargetGroupArn"],
    );

    // The task: the signing key as a secret, never as plain environment; behind the ALB.
    let secret_arn = &outputs["JwtSecretArn"];
    let c = container(&config, &outputs).await;
    assert_eq!(secrets(&c).get("WS_JWT_SECRET"), Some(secret_arn), "{c:#?}");
    let vars = environment(&c);
    assert!(!vars.contains_key("WS_JWT_SECRET"), "{vars:?}");
    assert_eq!(vars["WS_TRUST_FORWARDED_FOR"], "true");
    assert_eq!(vars["WS_JWT_ISSUER"], "https://issuer.test");
    assert!(!vars.contains_key("WS_JWT_JWKS_URL"), "{vars:?}");
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let key = sm
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .expect("the generated secret exists")
        .secret_string
        .expect("a string");
    assert!(key.len() >= 32, "{} bytes", key.len());

    // wsctl token signs with that secret: JSON with the claims, text with the token alone.
    let out = token(
        &project,
        &env,
        &[
            "--sub",
            "alice",
            "--project",
            "p1",
            "--queue",
            "dev",
            "--ttl",
            "10m",
            "--output",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let minted: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&["https://issuer.test"]);
    validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
    let claims = jsonwebtoken::decode::<Value>(
        minted["token"].as_str().expect("token"),
        &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()),
        &validation,
    )
    .expect("the token verifies with the environment's secret")
    .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["projects"], serde_json::json!(["p1"]));
    assert_eq!(claims["queues"], serde_json::json!(["dev"]));
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(600));
    assert_eq!(minted["expires_at"], claims["exp"]);

    let out = token(&project, &env, &["--sub", "bob", "--project", "*"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.trim().split('.').count(), 3, "one JWT: {stdout}");
    assert!(text(&out.stderr).contains("token for bob"));

    // A queue that does not exist is a usage error.
    let out = token(
        &project,
        &env,
        &["--sub", "bob", "--project", "p1", "--queue", "billing"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_jwks_there_is_no_secret_and_token_says_where_tokens_come_from() {
    let config = sdk_config().await;
    let env = unique_env("j");
    let jwks = "https://idp.test/.well-known/jwks.json";
    let project = deployed(
        &config,
        &env,
        &format!("    jwt:\n      jwks_url: {jwks}\n"),
    )
    .await;
    let outputs = outputs(&config, &env).await;
    assert!(!outputs.contains_key("JwtSecretArn"), "{outputs:?}");

    // Without a certificate, HTTP serves and holds the VPC-only publish rules.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let (http, serve) = listener(&elb, &outputs, 80).await;
    assert_eq!(serve.r#type(), Some(&ActionTypeEnum::Forward));
    let cidrs = default_vpc_cidrs(&config).await;
    assert_publish_only_from(
        &publish_rules(&elb, &http).await,
        &cidrs,
        &outputs["TargetGroupArn"],
    );

    let c = container(&config, &outputs).await;
    assert_eq!(
        environment(&c).get("WS_JWT_JWKS_URL").map(String::as_str),
        Some(jwks)
    );
    assert!(!secrets(&c).contains_key("WS_JWT_SECRET"), "{c:#?}");

    let out = token(&project, &env, &["--sub", "alice", "--project", "p1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(jwks) && stderr.contains("no signing secret"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // An environment never deployed: exit 5 and the way forward.
    let out = token(&project, "nowhere", &["--sub", "alice", "--project", "p1"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wsctl deploy --env nowhere"));
}
