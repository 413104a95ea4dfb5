//! How results leave the generator: one JSON object per line on stdout, printed (and flushed)
//! the moment a step or measurement is done, so a run that is stopped half-way still leaves
//! its finished lines; and a table for people, printed on stderr when the mode ends. Also the
//! latency summary every mode shares (hdrhistogram in microseconds, reported in ms).

use std::io::Write;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Prints one JSON line on stdout: `{"mode":..,"at":..,` then the object's own fields.
pub fn line(mode: &str, value: Value) {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // serde_json sorts object keys; putting mode and time first keeps lines scannable by eye.
    let head = format!(r#"{{"mode":{},"at":"{at}"}}"#, Value::from(mode));
    let body = value.to_string();
    let text = match body.strip_prefix('{') {
        Some("}") | None => head,
        Some(rest) => format!("{},{rest}", head.trim_end_matches('}')),
    };
    let mut out = std::io::stdout().lock();
    // stdout closed under us (a pipe into `head`): nothing useful left to do with the line.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A progress note for whoever watches the terminal; never part of the results.
pub fn note(text: impl std::fmt::Display) {
    eprintln!("duet-load: {text}");
}

/// A latency histogram over 1 µs .. 10 min with 3 significant digits (values beyond are
/// clamped to the top, which is already a failed run).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// p50/p90/p99/p99.9/max of a microsecond histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    /// The summary as JSON; without samples only `{"count": 0}`, never made-up zeros.
    pub fn json(&self) -> Value {
        if self.count == 0 {
            return json!({ "count": 0 });
        }
        json!({
            "count": self.count,
            "p50": round3(self.p50),
            "p90": round3(self.p90),
            "p99": round3(self.p99),
            "p99_9": round3(self.p999),
            "max": round3(self.max),
        })
    }

    /// One percentile for a table cell, or "-" without samples.
    pub fn cell(&self, pick: fn(&Latency) -> f64, digits: usize) -> String {
        if self.count == 0 {
            "-".to_owned()
        } else {
            format!("{:.digits$}", pick(self))
        }
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The table printed at the end, on stderr.
pub struct Table {
    title: String,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&'static str]) -> Table {
        Table {
            title: title.into(),
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let render = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                // Right-aligned: the cells are mostly numbers.
                text.push_str(&format!("{cell:>width$}"));
            }
            text
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "\n{}", self.title);
        let _ = writeln!(err, "{}", render(&mut self.headers.iter().copied()));
        let rule: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        let _ = writeln!(err, "{}", "-".repeat(rule));
        for row in &self.rows {
            let _ = writeln!(err, "{}", render(&mut row.iter().map(String::as_str)));
        }
    }
}

/// A number for a table cell: integers without decimals, others with `digits`.
pub fn cell(x: f64, digits: usize) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.digits$}")
    }
}
