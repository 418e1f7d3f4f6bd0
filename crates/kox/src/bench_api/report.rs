//! What every benchmark prints and writes: percentiles, a human table, the JSON result, and a
//! description of the machine the figures come from.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// The `p`-th percentile (0–100) of sorted values, nearest-rank.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latencies in microseconds: sorted, summarized in milliseconds.
pub fn latency_summary(mut micros: Vec<u32>) -> Value {
    micros.sort_unstable();
    let at = |p| percentile(&micros, p) as f64 / 1000.0;
    json!({
        "count": micros.len(),
        "p50_ms": at(50.0),
        "p90_ms": at(90.0),
        "p99_ms": at(99.0),
        "max_ms": micros.last().map_or(0.0, |m| *m as f64 / 1000.0),
    })
}

/// A goal and whether it was met, for the table and the JSON.
pub fn goal(name: &str, measured: String, target: &str, met: bool) -> Value {
    json!({ "goal": name, "measured": measured, "target": target, "met": met })
}

/// A plain text table: a title, a header row and rows, columns padded to fit.
pub struct Table {
    title: String,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        println!("\n{}", self.title);
        for (i, row) in self.rows.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
                .collect();
            println!("  {}", line.join("  ").trim_end());
            if i == 0 {
                let total = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
                println!("  {}", "-".repeat(total));
            }
        }
    }
}

/// Prints the goals table.
pub fn print_goals(goals: &[Value]) {
    let mut t = Table::new("goals", &["goal", "measured", "target", "met"]);
    for g in goals {
        t.row(vec![
            g["goal"].as_str().unwrap_or_default().to_string(),
            g["measured"].as_str().unwrap_or_default().to_string(),
            g["target"].as_str().unwrap_or_default().to_string(),
            if g["met"].as_bool().unwrap_or(false) {
                "met".into()
            } else {
                "MISSED".into()
            },
        ]);
    }
    t.print();
}

/// The machine and its load, recorded with every result because the machines are shared.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": cpu,
        "kernel": kernel.trim(),
        "loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

/// Completes a result with the machine and the time, and writes it to `path` if given.
pub fn finish(mut result: Value, path: Option<&Path>) -> Result<()> {
    result["machine"] = machine();
    result["unix_time"] = json!(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(&result)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nresult written to {}", path.display());
    }
    Ok(())
}

/// A duration flag in seconds (`--duration 10`, `--settle 0.5`).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A size in KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7u32], 99.0), 7);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
