//! Public and private subnets, told apart by their route tables: a subnet whose route table
//! (its own, else the VPC's main one) routes to an internet gateway is public. The load
//! balancer (internet-facing) goes into public subnets; the tasks go into private ones when the
//! VPC has private subnets that can reach ECR, CloudWatch Logs, SQS, DynamoDB and Secrets
//! Manager (a NAT gateway, or VPC endpoints for all of them), without a public IP. Otherwise
//! (the default VPC of a new account: public subnets only) the tasks run in the public subnets
//! with a public IP, as before, and preflight says why.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, RouteTable};

use super::network::{self, Network};
use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};

/// How a subnet reaches the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A route to an internet gateway: public.
    Public,
    /// A default route through a NAT gateway, NAT instance or transit gateway: private with
    /// egress.
    Nat,
    /// No way out: private, and only VPC endpoints reach AWS services.
    Isolated,
}

/// The AWS services a task needs before it runs (image pull, logs) and while it runs.
/// `s3` and `dynamodb` are gateway endpoints; ECR's layers are in S3.
pub const NEEDED_ENDPOINTS: [&str; 7] = [
    "ecr.api",
    "ecr.dkr",
    "s3",
    "logs",
    "sqs",
    "dynamodb",
    "secretsmanager",
];

/// What the VPC's route tables and endpoints say.
#[derive(Debug, Default)]
pub struct Routing {
    /// subnet → reach, for every subnet asked about.
    pub reach: BTreeMap<String, Reach>,
    /// The endpoint services (short names, `ecr.dkr`) the VPC has.
    pub endpoints: BTreeSet<String>,
}

impl Routing {
    pub fn reach(&self, subnet: &str) -> Reach {
        self.reach.get(subnet).copied().unwrap_or(Reach::Isolated)
    }

    /// The endpoints an isolated subnet would still need.
    pub fn missing_endpoints(&self) -> Vec<&'static str> {
        NEEDED_ENDPOINTS
            .into_iter()
            .filter(|e| !self.endpoints.contains(*e))
            .collect()
    }

    /// Whether a task in `subnet` can pull its image and write its logs without a public IP.
    pub fn private_reaches_aws(&self, subnet: &str) -> bool {
        match self.reach(subnet) {
            Reach::Nat => true,
            Reach::Isolated => self.missing_endpoints().is_empty(),
            Reach::Public => false,
        }
    }
}

/// Reads the VPC's route tables and endpoints (DescribeRouteTables, DescribeVpcEndpoints).
pub async fn routing(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
    subnet_ids: &[String],
) -> anyhow::Result<Routing> {
    let by_vpc = || Filter::builder().name("vpc-id").values(vpc_id).build();
    let tables: Vec<RouteTable> = ec2
        .describe_route_tables()
        .filters(by_vpc())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .aws_context(|| format!("reading the route tables of {vpc_id}"))?;
    let endpoints: Vec<String> = ec2
        .describe_vpc_endpoints()
        .filters(by_vpc())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .aws_context(|| format!("reading the VPC endpoints of {vpc_id}"))?
        .into_iter()
        .filter(|e| {
            e.state()
                .is_none_or(|s| s.as_str().eq_ignore_ascii_case("available"))
        })
        .filter_map(|e| e.service_name().map(short_service_name))
        .collect();
    Ok(Routing {
        reach: subnet_ids
            .iter()
            .map(|s| (s.clone(), reach_of(&tables, s)))
            .collect(),
        endpoints: endpoints.into_iter().collect(),
    })
}

/// `com.amazonaws.us-east-1.ecr.dkr` → `ecr.dkr`.
fn short_service_name(name: &str) -> String {
    let mut parts = name.splitn(4, '.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(_region), Some(service)) => service.to_owned(),
        _ => name.to_owned(),
    }
}

/// The reach of `subnet`: through its explicitly associated route table, else the main one.
fn reach_of(tables: &[RouteTable], subnet: &str) -> Reach {
    let associated = |t: &&RouteTable| {
        t.associations()
            .iter()
            .any(|a| a.subnet_id() == Some(subnet))
    };
    let main = |t: &&RouteTable| t.associations().iter().any(|a| a.main() == Some(true));
    let Some(table) = tables
        .iter()
        .find(associated)
        .or_else(|| tables.iter().find(main))
    else {
        return Reach::Isolated;
    };
    let active = table
        .routes()
        .iter()
        .filter(|r| r.state().is_none_or(|s| s.as_str() == "active"));
    let mut reach = Reach::Isolated;
    for route in active {
        if route.gateway_id().is_some_and(|g| g.starts_with("igw-")) {
            return Reach::Public;
        }
        let default = route.destination_cidr_block() == Some("0.0.0.0/0");
        let egress = route.nat_gateway_id().is_some()
            || route.transit_gateway_id().is_some()
            || route.instance_id().is_some()
            || route.network_interface_id().is_some();
        if default && egress {
            reach = Reach::Nat;
        }
    }
    reach
}

/// Where the load balancer and the tasks go.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The load balancer's subnets (public).
    pub load_balancer: Vec<(String, String)>,
    /// The tasks' subnets, in the load balancer's zones; empty: the load balancer's.
    pub tasks: Vec<(String, String)>,
    /// Whether tasks get a public IP (only in public subnets).
    pub assign_public_ip: bool,
    /// Why the tasks are where they are, when that is not the private ideal.
    pub note: Option<String>,
}

/// Splits `(subnet, zone)` pairs into the load balancer's and the tasks'. `configured`: the
/// operator named these subnets, so one that cannot serve is an error, not a thing to skip.
pub fn place(
    subnets: &[(String, String)],
    routing: &Routing,
    configured: bool,
) -> anyhow::Result<Placement> {
    let (public, private): (Vec<_>, Vec<_>) = subnets
        .iter()
        .cloned()
        .partition(|(id, _)| routing.reach(id) == Reach::Public);
    if public.is_empty() {
        let names: Vec<&str> = subnets.iter().map(|(id, _)| id.as_str()).collect();
        anyhow::bail!(
            "no public subnet (a route table with a route to an internet gateway) among {}: \
             the internet-facing load balancer needs public subnets in two zones. Add an \
             internet gateway route to two of them, or name public ones in subnet_ids",
            names.join(", ")
        );
    }
    let lb_zones: BTreeSet<&str> = public.iter().map(|(_, z)| z.as_str()).collect();
    let (usable, unusable): (Vec<_>, Vec<_>) = private
        .into_iter()
        .partition(|(id, _)| routing.private_reaches_aws(id));
    let (usable, outside): (Vec<_>, Vec<_>) = usable
        .into_iter()
        .partition(|(_, z)| lb_zones.contains(z.as_str()));
    let why_not = |unusable: &[(String, String)]| {
        let ids: Vec<&str> = unusable.iter().map(|(id, _)| id.as_str()).collect();
        format!(
            "private subnet(s) {} have no NAT gateway route and lack VPC endpoints for {}, so a \
             task there could not pull its image or write its logs",
            ids.join(", "),
            routing.missing_endpoints().join(", ")
        )
    };
    if configured && !unusable.is_empty() {
        anyhow::bail!(
            "{}: add a NAT gateway (a 0.0.0.0/0 route to it in their route table) or those VPC \
             endpoints, or remove them from subnet_ids",
            why_not(&unusable)
        );
    }
    if !usable.is_empty() {
        let note = (!outside.is_empty()).then(|| {
            let ids: Vec<&str> = outside.iter().map(|(id, _)| id.as_str()).collect();
            format!(
                "private subnet(s) {} are in zones without a public subnet for the load \
                 balancer; no task runs there",
                ids.join(", ")
            )
        });
        return Ok(Placement {
            load_balancer: public,
            tasks: usable,
            assign_public_ip: false,
            note,
        });
    }
    let note = if unusable.is_empty() {
        None
    } else {
        Some(format!(
            "{}: the tasks run in the public subnets with a public IP",
            why_not(&unusable)
        ))
    };
    Ok(Placement {
        load_balancer: public,
        tasks: Vec::new(),
        assign_public_ip: true,
        note,
    })
}

/// The network of a deploy: `subnets` are `(id, zone, vpc)` as DescribeSubnets gave them. The
/// load balancer gets one public subnet per zone (all configured ones), the tasks the private
/// subnets of those zones that reach AWS, else the load balancer's subnets with a public IP.
pub fn arrange(
    vpc_id: &str,
    subnets: Vec<(String, String, String)>,
    routing: &Routing,
    configured: bool,
) -> anyhow::Result<Network> {
    let pairs: Vec<(String, String)> = subnets
        .iter()
        .map(|(id, zone, _)| (id.clone(), zone.clone()))
        .collect();
    // the VPC check first: a subnet of another VPC is a usage error whatever its routes
    network::pick(vpc_id, subnets.clone(), configured)?;
    let placement =
        place(&pairs, routing, configured).map_err(|e| fail(Exit::Failure, e.to_string()))?;
    let in_vpc = |set: &[(String, String)]| -> Vec<(String, String, String)> {
        set.iter()
            .map(|(id, zone)| (id.clone(), zone.clone(), vpc_id.to_owned()))
            .collect()
    };
    let mut network = network::pick(vpc_id, in_vpc(&placement.load_balancer), configured)?;
    let lb_zones: BTreeSet<String> = network.zones.iter().cloned().collect();
    let tasks: Vec<(String, String)> = placement
        .tasks
        .into_iter()
        .filter(|(_, zone)| lb_zones.contains(zone))
        .collect();
    let mut task_subnet_ids: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut sorted = tasks;
    sorted.sort();
    for (id, zone) in sorted {
        // one per zone unless the operator named them
        if configured || seen.insert(zone) {
            task_subnet_ids.push(id);
        }
    }
    network.assign_public_ip = task_subnet_ids.is_empty();
    network.task_subnet_ids = task_subnet_ids;
    network.note = placement.note;
    Ok(network)
}

#[cfg(test)]
#[path = "subnets_tests.rs"]
mod tests;
