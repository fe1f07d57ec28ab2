//! Subnet classification on recorded EC2 answers (aws-smithy-mocks): the emulator's VPCs have
//! no NAT gateways or endpoints to route through, and these are the shapes real VPCs come in.

use aws_sdk_ec2::operation::describe_route_tables::DescribeRouteTablesOutput;
use aws_sdk_ec2::operation::describe_vpc_endpoints::DescribeVpcEndpointsOutput;
use aws_sdk_ec2::types::{Route, RouteState, RouteTableAssociation, VpcEndpoint};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};

use super::*;

const VPC: &str = "vpc-1";

fn ec2(rules: &[&Rule]) -> aws_sdk_ec2::Client {
    use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
    let interceptor = rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |i, r| i.with_rule(r),
    );
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

fn local() -> Route {
    Route::builder()
        .destination_cidr_block("10.0.0.0/16")
        .gateway_id("local")
        .state(RouteState::Active)
        .build()
}

fn to_igw() -> Route {
    Route::builder()
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id("igw-0abc")
        .state(RouteState::Active)
        .build()
}

fn to_nat() -> Route {
    Route::builder()
        .destination_cidr_block("0.0.0.0/0")
        .nat_gateway_id("nat-0abc")
        .state(RouteState::Active)
        .build()
}

/// A route table: `main`, or explicitly associated with `subnets`.
fn table(id: &str, main: bool, subnets: &[&str], routes: Vec<Route>) -> RouteTable {
    let mut b = RouteTable::builder()
        .route_table_id(id)
        .vpc_id(VPC)
        .set_routes(Some(routes));
    if main {
        b = b.associations(RouteTableAssociation::builder().main(true).build());
    }
    for s in subnets {
        b = b.associations(
            RouteTableAssociation::builder()
                .main(false)
                .subnet_id(*s)
                .build(),
        );
    }
    b.build()
}

fn endpoint(service: &str) -> VpcEndpoint {
    VpcEndpoint::builder()
        .vpc_id(VPC)
        .service_name(format!("com.amazonaws.us-east-1.{service}"))
        .state("available".into())
        .build()
}

fn recorded(tables: Vec<RouteTable>, endpoints: Vec<VpcEndpoint>) -> (Rule, Rule) {
    let rt = mock!(aws_sdk_ec2::Client::describe_route_tables)
        .match_requests(|r| {
            r.filters()
                .iter()
                .any(|f| f.name() == Some("vpc-id") && f.values() == [VPC])
        })
        .then_output(move || {
            DescribeRouteTablesOutput::builder()
                .set_route_tables(Some(tables.clone()))
                .build()
        });
    let ep = mock!(aws_sdk_ec2::Client::describe_vpc_endpoints).then_output(move || {
        DescribeVpcEndpointsOutput::builder()
            .set_vpc_endpoints(Some(endpoints.clone()))
            .build()
    });
    (rt, ep)
}

/// Six subnets in three zones: `pub-*` and `priv-*`.
fn all_subnets() -> Vec<(String, String, String)> {
    [
        ("pub-a", "us-east-1a"),
        ("pub-b", "us-east-1b"),
        ("pub-c", "us-east-1c"),
        ("priv-a", "us-east-1a"),
        ("priv-b", "us-east-1b"),
        ("priv-c", "us-east-1c"),
    ]
    .into_iter()
    .map(|(id, zone)| (id.to_owned(), zone.to_owned(), VPC.to_owned()))
    .collect()
}

async fn arranged(
    tables: Vec<RouteTable>,
    endpoints: Vec<VpcEndpoint>,
    subnets: Vec<(String, String, String)>,
    configured: bool,
) -> anyhow::Result<Network> {
    let (rt, ep) = recorded(tables, endpoints);
    let client = ec2(&[&rt, &ep]);
    let ids: Vec<String> = subnets.iter().map(|(id, _, _)| id.clone()).collect();
    let routing = routing(&client, VPC, &ids).await?;
    arrange(VPC, subnets, &routing, configured)
}

#[tokio::test]
async fn public_only_vpc_keeps_tasks_public_with_a_public_ip() {
    // The default VPC: one main table routing to the internet gateway, no endpoints.
    let subnets: Vec<_> = all_subnets().into_iter().take(3).collect();
    let net = arranged(
        vec![table("rtb-main", true, &[], vec![local(), to_igw()])],
        vec![],
        subnets,
        false,
    )
    .await
    .expect("public only works");
    assert_eq!(net.subnet_ids, ["pub-a", "pub-b", "pub-c"]);
    assert!(net.task_subnet_ids.is_empty(), "{net:?}");
    assert!(net.assign_public_ip);
    assert_eq!(net.note, None, "nothing to explain in a public-only VPC");
}

#[tokio::test]
async fn mixed_vpc_puts_the_balancer_public_and_the_tasks_private() {
    // Main table private through a NAT gateway; a public table associated with the pub-*.
    let net = arranged(
        vec![
            table("rtb-main", true, &[], vec![local(), to_nat()]),
            table(
                "rtb-public",
                false,
                &["pub-a", "pub-b", "pub-c"],
                vec![local(), to_igw()],
            ),
        ],
        vec![],
        all_subnets(),
        false,
    )
    .await
    .expect("mixed works");
    assert_eq!(net.subnet_ids, ["pub-a", "pub-b", "pub-c"]);
    assert_eq!(net.task_subnet_ids, ["priv-a", "priv-b", "priv-c"]);
    assert!(!net.assign_public_ip, "private tasks get no public IP");
}

#[tokio::test]
async fn private_without_nat_or_endpoints_is_explained_and_tasks_stay_public() {
    let tables = vec![
        table("rtb-main", true, &[], vec![local()]),
        table(
            "rtb-public",
            false,
            &["pub-a", "pub-b", "pub-c"],
            vec![local(), to_igw()],
        ),
    ];
    // Only some endpoints: still no way to pull from ECR.
    let endpoints = vec![endpoint("ecr.api"), endpoint("logs")];
    let net = arranged(tables.clone(), endpoints.clone(), all_subnets(), false)
        .await
        .expect("falls back to public tasks");
    assert!(net.task_subnet_ids.is_empty());
    assert!(net.assign_public_ip);
    let note = net.note.expect("a note on why the tasks are public");
    for needle in [
        "priv-a",
        "no NAT gateway",
        "ecr.dkr",
        "s3",
        "sqs",
        "secretsmanager",
    ] {
        assert!(note.contains(needle), "{needle} in {note}");
    }
    assert!(!note.contains("ecr.api,"), "ecr.api is there: {note}");

    // Named in subnet_ids, the same private subnets are refused before anything is deployed.
    let err = arranged(tables, endpoints, all_subnets(), true)
        .await
        .expect_err("configured private subnets without a way out");
    let text = err.to_string();
    assert!(
        text.contains("add a NAT gateway") && text.contains("ecr.dkr"),
        "{text}"
    );
}

#[tokio::test]
async fn isolated_subnets_with_every_endpoint_take_the_tasks() {
    let endpoints = NEEDED_ENDPOINTS.iter().map(|e| endpoint(e)).collect();
    let net = arranged(
        vec![
            table("rtb-main", true, &[], vec![local()]),
            table(
                "rtb-public",
                false,
                &["pub-a", "pub-b"],
                vec![local(), to_igw()],
            ),
        ],
        endpoints,
        all_subnets(),
        false,
    )
    .await
    .expect("endpoints suffice");
    assert_eq!(net.subnet_ids, ["pub-a", "pub-b"]);
    // priv-c's zone has no public subnet, so the load balancer cannot reach a task there
    assert_eq!(net.task_subnet_ids, ["priv-a", "priv-b"]);
    assert!(!net.assign_public_ip);
    assert!(net.note.is_some_and(|n| n.contains("priv-c")));
}

#[tokio::test]
async fn no_public_subnet_is_refused_with_the_reason() {
    let err = arranged(
        vec![table("rtb-main", true, &[], vec![local(), to_nat()])],
        vec![],
        all_subnets().into_iter().skip(3).collect(),
        false,
    )
    .await
    .expect_err("an internet-facing load balancer needs public subnets");
    assert!(err.to_string().contains("no public subnet"), "{err}");
}
