//! CPU and memory over the last hour: one GetMetricData call for both series, shown as
//! min/avg/max and a sparkline (the shape of the hour at a glance).

use crate::aws::AwsResultExt as _;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use serde::Serialize;

/// Seconds per point: 12 points for the hour.
const PERIOD: i32 = 300;

/// One metric over the hour (percent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    /// Averages per period, oldest first.
    pub points: Vec<f64>,
    pub period_seconds: i32,
}

impl Series {
    pub fn from_points(points: Vec<f64>) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let min = points.iter().copied().fold(f64::INFINITY, f64::min);
        let max = points.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let avg = points.iter().sum::<f64>() / points.len() as f64;
        Some(Self {
            min,
            avg,
            max,
            points,
            period_seconds: PERIOD,
        })
    }
}

/// The service's (cpu, memory) utilization over the last hour; `None` where there are no
/// data points (a new service, or no metrics yet).
pub async fn last_hour(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<(Option<Series>, Option<Series>)> {
    let end = std::time::SystemTime::now();
    let start = end - std::time::Duration::from_secs(3600);
    let query = |id: &str, metric: &str| -> MetricDataQuery {
        let metric = Metric::builder()
            .namespace("AWS/ECS")
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("ClusterName")
                    .value(cluster)
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("ServiceName")
                    .value(service)
                    .build(),
            )
            .build();
        let stat = MetricStat::builder()
            .metric(metric)
            .period(PERIOD)
            .stat("Average")
            .build();
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(stat)
            .return_data(true)
            .build()
    };
    let response = cloudwatch
        .get_metric_data()
        .start_time(start.into())
        .end_time(end.into())
        .scan_by(ScanBy::TimestampAscending)
        .metric_data_queries(query("cpu", "CPUUtilization"))
        .metric_data_queries(query("memory", "MemoryUtilization"))
        .send()
        .await
        .aws_context(|| "reading CPU and memory metrics")?;
    let series = |id: &str| {
        response
            .metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .and_then(|r| Series::from_points(r.values().to_vec()))
    };
    Ok((series("cpu"), series("memory")))
}

/// `▁▂▅█`: each point scaled to 0..100 %, so CPU and memory lines compare.
pub fn sparkline(points: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    points
        .iter()
        .map(|p| {
            let level = (p.clamp(0.0, 100.0) / 100.0 * 7.0).round() as usize;
            BARS[level.min(7)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_and_draws_a_series() {
        let series = Series::from_points(vec![0.0, 50.0, 100.0, 10.0]).expect("points");
        assert_eq!((series.min, series.max), (0.0, 100.0));
        assert!((series.avg - 40.0).abs() < 1e-9);
        assert_eq!(sparkline(&series.points), "▁▅█▂");
        assert_eq!(Series::from_points(vec![]), None);
    }
}
