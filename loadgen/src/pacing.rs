//! Open-loop pacing: the k-th event is due at start + k/rate, whatever happened before, so a slow
//! reply does not quietly lower the offered load (coordinated omission). A sender that falls
//! behind catches up at once and the report shows the rate actually achieved.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    rate: f64,
    total: u64,
}

impl Pacer {
    /// `rate` events a second for `duration`.
    pub fn new(start: Instant, rate: u64, duration: Duration) -> Self {
        let rate = rate.max(1) as f64;
        Pacer {
            start,
            rate,
            total: (rate * duration.as_secs_f64()).round() as u64,
        }
    }

    /// How many events the run holds.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When event `k` (from 0) is due.
    pub fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_events_evenly() {
        let t0 = Instant::now();
        let p = Pacer::new(t0, 200, Duration::from_secs(10));
        assert_eq!(p.total(), 2000);
        assert_eq!(p.due(0), t0);
        assert_eq!(p.due(1) - t0, Duration::from_millis(5));
        assert_eq!(p.due(200) - t0, Duration::from_secs(1));
        let last = p.due(p.total() - 1) - t0;
        assert!(last < Duration::from_secs(10) && last >= Duration::from_millis(9995));
    }

    #[test]
    fn fractional_durations_and_zero_rate() {
        let t0 = Instant::now();
        assert_eq!(
            Pacer::new(t0, 1000, Duration::from_millis(2500)).total(),
            2500
        );
        assert_eq!(Pacer::new(t0, 0, Duration::from_secs(3)).total(), 3);
    }

    #[tokio::test]
    async fn a_paced_loop_keeps_the_rate() {
        let start = Instant::now();
        let p = Pacer::new(start, 500, Duration::from_millis(300));
        for k in 0..p.total() {
            tokio::time::sleep_until(p.due(k).into()).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(298) && took < Duration::from_millis(400),
            "{took:?}"
        );
    }
}
