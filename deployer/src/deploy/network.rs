//! The VPC and subnets of the load balancer and tasks. An ALB needs subnets in at least two
//! availability zones; taking the first two subnets (as shell deploy scripts often do) can pick
//! two in one zone and then fail deep inside CloudFormation. Here: one subnet per zone,
//! checked up front.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};
use crate::settings::Environment;

/// Most zones the service spreads over.
const MAX_ZONES: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub zones: Vec<String>,
    /// The tasks' subnets when they are not the load balancer's (private ones; `subnets.rs`).
    pub task_subnet_ids: Vec<String>,
    pub assign_public_ip: bool,
    /// Why the tasks are placed as they are, when preflight has something to say about it.
    pub note: Option<String>,
    /// The VPC's IPv4 blocks: where the load balancer answers `POST /publish` from.
    pub vpc_cidrs: Vec<String>,
}

/// An ALB rule takes five condition values; the publish rule's path takes one.
const MAX_PUBLISH_CIDRS: usize = 4;

/// The configured VPC (else the default one) and subnets (else one per zone, up to three).
pub async fn resolve(ec2: &aws_sdk_ec2::Client, env: &Environment) -> anyhow::Result<Network> {
    let vpc_id = match &env.vpc_id {
        Some(id) => id.clone(),
        None => default_vpc(ec2).await?,
    };
    let mut request = ec2.describe_subnets();
    request = if env.subnet_ids.is_empty() {
        request.filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
    } else {
        request.set_subnet_ids(Some(env.subnet_ids.clone()))
    };
    let out = request
        .send()
        .await
        .aws_context(|| format!("listing the subnets of {vpc_id}"))?;
    let subnets: Vec<(String, String, String)> = out
        .subnets()
        .iter()
        .filter_map(|s| {
            Some((
                s.subnet_id()?.to_owned(),
                s.availability_zone()?.to_owned(),
                s.vpc_id()?.to_owned(),
            ))
        })
        .collect();
    let ids: Vec<String> = subnets.iter().map(|(id, _, _)| id.clone()).collect();
    let routing = super::subnets::routing(ec2, &vpc_id, &ids).await?;
    let mut network =
        super::subnets::arrange(&vpc_id, subnets, &routing, !env.subnet_ids.is_empty())?;
    network.vpc_cidrs = vpc_cidrs(ec2, &vpc_id).await?;
    Ok(network)
}

/// The VPC's associated IPv4 CIDR blocks, primary first.
async fn vpc_cidrs(ec2: &aws_sdk_ec2::Client, vpc_id: &str) -> anyhow::Result<Vec<String>> {
    let out = ec2
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .aws_context(|| format!("reading the address ranges of {vpc_id}"))?;
    let vpc = out
        .vpcs()
        .first()
        .ok_or_else(|| fail(Exit::Usage, format!("VPC {vpc_id} does not exist")))?;
    let mut cidrs: Vec<String> = vpc.cidr_block().map(str::to_owned).into_iter().collect();
    for block in vpc.cidr_block_association_set() {
        let associated = block
            .cidr_block_state()
            .and_then(|s| s.state())
            .is_some_and(|s| s.as_str() == "associated");
        let new = block
            .cidr_block()
            .filter(|cidr| associated && !cidrs.iter().any(|c| c == cidr));
        if let Some(cidr) = new {
            cidrs.push(cidr.to_owned());
        }
    }
    if cidrs.is_empty() {
        return Err(fail(
            Exit::Failure,
            format!("VPC {vpc_id} has no IPv4 CIDR block"),
        ));
    }
    cidrs.truncate(MAX_PUBLISH_CIDRS);
    Ok(cidrs)
}

async fn default_vpc(ec2: &aws_sdk_ec2::Client) -> anyhow::Result<String> {
    let out = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .aws_context(|| "looking up the default VPC")?;
    out.vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .map(str::to_owned)
        .ok_or_else(|| {
            fail(
                Exit::Failure,
                "this region has no default VPC: set vpc_id and subnet_ids for the environment \
                 in wsctl.yaml",
            )
        })
}

/// Chooses subnets: all configured ones (checked), or the first subnet of each zone.
pub(super) fn pick(
    vpc_id: &str,
    subnets: Vec<(String, String, String)>,
    configured: bool,
) -> anyhow::Result<Network> {
    if let Some((id, _, other)) = subnets.iter().find(|(_, _, vpc)| vpc != vpc_id) {
        return Err(fail(
            Exit::Usage,
            format!("subnet {id} is in {other}, not in the service's VPC {vpc_id}"),
        ));
    }
    let mut by_zone: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, zone, _) in subnets {
        by_zone.entry(zone).or_default().push(id);
    }
    for ids in by_zone.values_mut() {
        ids.sort();
    }
    if by_zone.len() < 2 {
        let found = by_zone
            .iter()
            .map(|(zone, ids)| format!("{} in {zone}", ids.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        let found = if found.is_empty() {
            "none".into()
        } else {
            found
        };
        return Err(fail(
            Exit::Failure,
            format!(
                "the load balancer needs subnets in at least two availability zones; {vpc_id} \
                 has {found}. Add a subnet in another zone or set subnet_ids in wsctl.yaml"
            ),
        ));
    }
    let (zones, subnet_ids) = if configured {
        let zones = by_zone.keys().cloned().collect();
        (zones, by_zone.into_values().flatten().collect())
    } else {
        by_zone
            .into_iter()
            .take(MAX_ZONES)
            .filter_map(|(zone, ids)| Some((zone, ids.into_iter().next()?)))
            .unzip()
    };
    Ok(Network {
        vpc_id: vpc_id.to_owned(),
        subnet_ids,
        zones,
        task_subnet_ids: Vec::new(),
        assign_public_ip: true,
        note: None,
        vpc_cidrs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str) -> (String, String, String) {
        (id.into(), zone.into(), "vpc-1".into())
    }

    #[test]
    fn takes_one_subnet_per_zone_not_the_first_two() {
        let net = pick(
            "vpc-1",
            vec![
                subnet("s-a1", "us-east-1a"),
                subnet("s-a2", "us-east-1a"),
                subnet("s-b1", "us-east-1b"),
            ],
            false,
        )
        .expect("two zones");
        assert_eq!(net.subnet_ids, ["s-a1", "s-b1"]);
        assert_eq!(net.zones, ["us-east-1a", "us-east-1b"]);
    }

    #[test]
    fn one_zone_is_refused_with_what_was_found() {
        let err = pick(
            "vpc-1",
            vec![subnet("s-a1", "us-east-1a"), subnet("s-a2", "us-east-1a")],
            false,
        )
        .expect_err("one zone");
        let text = err.to_string();
        assert!(text.contains("at least two availability zones"), "{text}");
        assert!(text.contains("s-a1, s-a2 in us-east-1a"), "{text}");
    }

    #[test]
    fn configured_subnets_must_be_in_the_vpc() {
        let mut other = subnet("s-x", "us-east-1b");
        other.2 = "vpc-2".into();
        let err =
            pick("vpc-1", vec![subnet("s-a", "us-east-1a"), other], true).expect_err("wrong vpc");
        assert!(
            err.to_string().contains("not in the service's VPC"),
            "{err}"
        );
    }
}
