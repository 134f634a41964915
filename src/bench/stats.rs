//! What a benchmark measured: latency samples and error counts, their percentiles, and the rows of
//! the results table (printed and written as JSON).

use std::time::Duration;

use serde::Serialize;

/// Latencies of the successful operations of one run, the failures, and how long it took.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    latencies: Vec<Duration>,
    /// Operations that failed (wrong status, transport error, timeout).
    pub errors: u64,
    /// Wall time from the first operation's start to the last one's end.
    pub elapsed: Duration,
}

impl Samples {
    /// Records one successful operation.
    pub fn ok(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    /// Records one failed operation.
    pub fn error(&mut self) {
        self.errors += 1;
    }

    /// Adds another run's samples (their elapsed times are not added: they ran at the same time).
    pub fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    /// Successful operations.
    pub fn count(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// Successful operations per second of elapsed time.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.count() as f64 / seconds
        } else {
            0.0
        }
    }

    /// Failed operations as a share of all.
    pub fn error_rate(&self) -> f64 {
        let all = self.count() + self.errors;
        if all == 0 {
            0.0
        } else {
            self.errors as f64 / all as f64
        }
    }

    /// The `q` quantile (0–1) of the latencies in milliseconds, by the nearest-rank method; `None`
    /// without samples.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        nearest_rank(&sorted, q).map(|d| d.as_secs_f64() * 1000.0)
    }

    /// p50, p95 and p99 in milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let ms = |q| nearest_rank(&sorted, q).map(|d| d.as_secs_f64() * 1000.0);
        Percentiles {
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

/// The nearest-rank quantile of sorted values: the smallest value with at least `q` of all at or
/// below it.
fn nearest_rank(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Whether a row met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// A reference or a figure without a target of its own.
    Info,
}

impl Verdict {
    /// Pass when `ok`, else fail.
    pub fn of(ok: bool) -> Self {
        if ok { Self::Pass } else { Self::Fail }
    }
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `P1`…`P8`, `S1`… (the original plan's scenarios), `ref` for references.
    pub id: String,
    /// What was measured.
    pub what: String,
    /// Successful operations.
    pub samples: u64,
    pub errors: u64,
    /// Operations per second (or events/s, rows/s: see `what`).
    pub throughput: Option<f64>,
    #[serde(flatten)]
    pub percentiles: Percentiles,
    /// The reference measured in the same run, described.
    pub reference: Option<String>,
    /// The figure the target is about: a ratio against the reference, a recall, megabytes...
    pub figure: Option<f64>,
    /// The unit or meaning of `figure` (`×`, `recall@10`, `MB`, `ms`, `s`).
    pub figure_unit: String,
    /// The target, as the quality bars or the original plan state it.
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    /// A row from samples, with no figure yet.
    pub fn from_samples(id: &str, what: impl Into<String>, samples: &Samples) -> Self {
        Self {
            id: id.to_owned(),
            what: what.into(),
            samples: samples.count(),
            errors: samples.errors,
            throughput: Some(samples.throughput()),
            percentiles: samples.percentiles(),
            reference: None,
            figure: None,
            figure_unit: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    /// A row holding one figure only.
    pub fn figure(id: &str, what: impl Into<String>, figure: f64, unit: &str) -> Self {
        Self {
            id: id.to_owned(),
            what: what.into(),
            samples: 0,
            errors: 0,
            throughput: None,
            percentiles: Percentiles::default(),
            reference: None,
            figure: Some(figure),
            figure_unit: unit.to_owned(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    /// Sets the figure.
    pub fn with_figure(mut self, figure: f64, unit: &str) -> Self {
        self.figure = Some(figure);
        self.figure_unit = unit.to_owned();
        self
    }

    /// Sets the reference's description.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Sets the target and whether it was met.
    pub fn judged(mut self, target: impl Into<String>, ok: bool) -> Self {
        self.target = target.into();
        self.verdict = Verdict::of(ok);
        self
    }
}

/// The table of every row, as text.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "id",
        "what",
        "n",
        "errors",
        "per s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "reference (same run)",
        "figure",
        "target",
        "verdict",
    ];
    let cells: Vec<[String; 12]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.what.clone(),
                if r.samples > 0 {
                    r.samples.to_string()
                } else {
                    "-".into()
                },
                r.errors.to_string(),
                r.throughput.map_or("-".into(), |t| format!("{t:.0}")),
                ms(r.percentiles.p50_ms),
                ms(r.percentiles.p95_ms),
                ms(r.percentiles.p99_ms),
                r.reference.clone().unwrap_or_else(|| "-".into()),
                r.figure
                    .map_or("-".into(), |f| format!("{} {}", number(f), r.figure_unit)),
                r.target.clone(),
                match r.verdict {
                    Verdict::Pass => "PASS".into(),
                    Verdict::Fail => "FAIL".into(),
                    Verdict::Info => "".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(padded.join(" | ").trim_end());
        out.push('\n');
    };
    line(&mut out, &header.map(str::to_owned));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut out, row);
    }
    out
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), number)
}

/// A number with about three significant digits.
fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ms: &[u64]) -> Samples {
        let mut s = Samples::default();
        for m in ms {
            s.ok(Duration::from_millis(*m));
        }
        s
    }

    #[test]
    fn given_a_hundred_latencies_when_asked_for_percentiles_then_nearest_rank_answers() {
        let s = samples(&(1..=100).collect::<Vec<_>>());
        let p = s.percentiles();
        assert_eq!(p.p50_ms, Some(50.0));
        assert_eq!(p.p95_ms, Some(95.0));
        assert_eq!(p.p99_ms, Some(99.0));
    }

    #[test]
    fn given_one_slow_outlier_in_ten_when_asked_for_p95_then_the_outlier_counts() {
        let s = samples(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 500]);
        assert_eq!(s.quantile_ms(0.95), Some(500.0));
        assert_eq!(s.quantile_ms(0.5), Some(1.0));
    }

    #[test]
    fn given_no_samples_when_asked_then_there_is_no_percentile_and_no_throughput() {
        let s = Samples::default();
        assert_eq!(s.percentiles(), Percentiles::default());
        assert_eq!(s.throughput(), 0.0);
        assert_eq!(s.error_rate(), 0.0);
    }

    #[test]
    fn given_errors_and_successes_when_asked_then_the_error_rate_is_their_share() {
        let mut s = samples(&[1, 2, 3]);
        s.error();
        assert!((s.error_rate() - 0.25).abs() < 1e-9);
        s.elapsed = Duration::from_secs(2);
        assert!((s.throughput() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn given_values_when_taking_the_median_then_the_middle_one_or_the_mean_of_two_is_returned() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn given_rows_when_printed_then_every_row_is_one_aligned_line() {
        let rows = vec![
            Row::from_samples("P1", "POST /problems", &samples(&[1, 2])).judged("≥ 0.75 ×", true),
            Row::figure("P6", "recall", 0.97, "recall@10").judged("≥ 0.95", false),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains("PASS") && lines[3].contains("FAIL"));
        assert!(lines[3].contains("0.97 recall@10"));
    }
}
