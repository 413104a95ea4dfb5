//! Where the time went inside the nodes: their `duet_event_stage_seconds` histograms read
//! from /metrics before and after a step, summed over the nodes, and each stage's p50, p99
//! and mean over the step told from the difference.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::{Value, json};

const FAMILY: &str = "duet_event_stage_seconds";
const PATHS: &str = "duet_sends_committed_total";

/// One node's (or the sum of several nodes') stage histograms at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stages {
    by_stage: BTreeMap<String, Histogram>,
    /// Sends committed by each path (`statement`, `rules`).
    by_path: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Histogram {
    /// Cumulative counts by upper bound (seconds), in order; the last is +Inf.
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Stages {
    /// Reads every node's /metrics (HOST:PORT each) and adds them up.
    pub async fn scrape(http: &reqwest::Client, addrs: &[String]) -> Result<Stages> {
        let mut total = Stages::default();
        for addr in addrs {
            let text = http
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .with_context(|| format!("reading the metrics of {addr}"))?
                .text()
                .await?;
            total.add(&Stages::parse(&text));
        }
        Ok(total)
    }

    fn parse(text: &str) -> Stages {
        let mut stages = Stages::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(PATHS) {
                let path = label(rest, "path");
                let value = rest
                    .rsplit_once(' ')
                    .and_then(|(_, v)| v.parse::<f64>().ok());
                if let (Some(path), Some(value)) = (path, value) {
                    *stages.by_path.entry(path.to_owned()).or_default() += value;
                }
                continue;
            }
            let Some(rest) = line.strip_prefix(FAMILY) else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let Some(stage) = label(labels, "stage") else {
                continue;
            };
            let h = stages.by_stage.entry(stage.to_owned()).or_default();
            if labels.starts_with("_bucket") {
                let le = match label(labels, "le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => match le.parse() {
                        Ok(le) => le,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                h.buckets.push((le, value));
            } else if labels.starts_with("_sum") {
                h.sum = value;
            } else if labels.starts_with("_count") {
                h.count = value;
            }
        }
        stages
    }

    fn add(&mut self, other: &Stages) {
        for (path, n) in &other.by_path {
            *self.by_path.entry(path.clone()).or_default() += n;
        }
        for (stage, h) in &other.by_stage {
            let mine = self.by_stage.entry(stage.clone()).or_default();
            if mine.buckets.is_empty() {
                *mine = h.clone();
                continue;
            }
            for (b, (_, n)) in mine.buckets.iter_mut().zip(&h.buckets) {
                b.1 += n;
            }
            mine.sum += h.sum;
            mine.count += h.count;
        }
    }

    /// What happened between `before` and `self`: per stage, its count, mean and p50/p99 in
    /// ms (a quantile is interpolated within its bucket).
    pub fn since(&self, before: &Stages) -> Value {
        let mut out = serde_json::Map::new();
        for (stage, after) in &self.by_stage {
            let empty = Histogram::default();
            let before = before.by_stage.get(stage).unwrap_or(&empty);
            let count = after.count - before.count;
            if count <= 0.0 {
                continue;
            }
            let buckets: Vec<(f64, f64)> = after
                .buckets
                .iter()
                .enumerate()
                .map(|(i, (le, n))| (*le, n - before.buckets.get(i).map_or(0.0, |b| b.1)))
                .collect();
            let ms = |q: f64| quantile(&buckets, count, q).map(|s| (s * 1e5).round() / 100.0);
            out.insert(
                stage.clone(),
                json!({
                    "count": count,
                    "mean": ((after.sum - before.sum) / count * 1e5).round() / 100.0,
                    "p50": ms(0.5),
                    "p99": ms(0.99),
                }),
            );
        }
        let paths: serde_json::Map<String, Value> = self
            .by_path
            .iter()
            .map(|(path, n)| {
                let before = before.by_path.get(path).copied().unwrap_or(0.0);
                (path.clone(), json!(n - before))
            })
            .collect();
        out.insert("sends_committed".into(), Value::Object(paths));
        Value::Object(out)
    }
}

/// A label's value in `{a="x",b="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// The q-quantile of cumulative buckets holding `count` observations, interpolated linearly
/// within its bucket (the last finite bound stands for +Inf).
fn quantile(buckets: &[(f64, f64)], count: f64, q: f64) -> Option<f64> {
    let rank = q * count;
    let mut lower = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let within = if n > lower.1 {
                (rank - lower.1) / (n - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, n);
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const BEFORE: &str = "\
duet_event_stage_seconds_sum{stage=\"commit\"} 0.1
duet_event_stage_seconds_count{stage=\"commit\"} 10
duet_event_stage_seconds_bucket{le=\"0.001\",stage=\"commit\"} 10
duet_event_stage_seconds_bucket{le=\"0.002\",stage=\"commit\"} 10
duet_event_stage_seconds_bucket{le=\"+Inf\",stage=\"commit\"} 10
";
    const AFTER: &str = "\
duet_event_stage_seconds_sum{stage=\"commit\"} 0.25
duet_event_stage_seconds_count{stage=\"commit\"} 110
duet_event_stage_seconds_bucket{le=\"0.001\",stage=\"commit\"} 60
duet_event_stage_seconds_bucket{le=\"0.002\",stage=\"commit\"} 110
duet_event_stage_seconds_bucket{le=\"+Inf\",stage=\"commit\"} 110
duet_sends_committed_total{path=\"rules\"} 7
";

    #[test]
    fn a_step_is_told_from_the_difference_of_two_scrapes() {
        let before = Stages::parse(BEFORE);
        let after = Stages::parse(AFTER);
        let step = after.since(&before);
        let commit = &step["commit"];
        assert_eq!(commit["count"], 100.0);
        assert_eq!(commit["mean"], 1.5);
        // Half of the hundred are under 1 ms: the median is the first bucket's bound.
        assert_eq!(commit["p50"], 1.0);
        // The 99th is 49 of the 50 between 1 and 2 ms.
        assert_eq!(commit["p99"], 1.98);
        assert_eq!(step["sends_committed"]["rules"], 7.0);
    }

    #[test]
    fn nodes_add_up() {
        let mut total = Stages::parse(AFTER);
        total.add(&Stages::parse(AFTER));
        assert_eq!(total.by_stage["commit"].count, 220.0);
        assert_eq!(total.by_stage["commit"].buckets[0].1, 120.0);
    }
}
