//! `cargo xtask bench`: runs the criterion benches of `pml-benches` once per workload, each in
//! its own process (so that its peak resident memory is its own), optionally runs PML's
//! reference script on the same workloads, and prints / writes the table.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use kdam::{Bar, BarExt};
use pml_benches::{PEAK_RSS_PREFIX, WORKLOADS_ENV, Workload, load_workloads, workloads_json};
use pml_core::backend::{BACKEND_ENV, BackendKind};
use serde_json::{Value, json};

/// What `cargo xtask bench` was asked to do.
pub struct BenchArgs {
    /// Python interpreter with torch and pytorch-metric-learning: also time PML.
    pub vs_pml: Option<PathBuf>,
    /// Write the rows as a JSON array here.
    pub json: Option<PathBuf>,
    /// The workloads file.
    pub workloads: PathBuf,
    /// Only workloads whose id (`kind/Name_n<n>_d<d>`) contains this text (case-insensitive).
    pub filter: Option<String>,
    /// The backend the bench binary runs on (and the pml-benches feature it is built with).
    pub backend: BackendKind,
    /// A prebuilt bench binary to run instead of building one.
    pub exe: Option<PathBuf>,
}

/// One side's measurement of a workload: the median step time and the peak memory, or why it
/// failed.
#[derive(Default)]
struct Measure {
    median_ms: Option<f64>,
    peak_rss_mb: Option<f64>,
    error: Option<String>,
}

struct Row {
    workload: Workload,
    ours: Measure,
    pml: Option<Measure>,
}

impl Row {
    /// PML's time over ours, when both completed.
    fn ratio(&self) -> Option<f64> {
        Some(self.pml.as_ref()?.median_ms? / self.ours.median_ms?)
    }

    fn to_json(&self) -> Value {
        let w = &self.workload;
        let mut o = json!({
            "kind": w.kind.key(),
            "name": w.name(),
            "n": w.entry.n,
            "d": w.entry.d,
            "median_ms": self.ours.median_ms,
            "peak_rss_mb": self.ours.peak_rss_mb,
        });
        if let Some(e) = &self.ours.error {
            o["error"] = json!(e);
        }
        if let Some(pml) = &self.pml {
            o["pml_median_ms"] = json!(pml.median_ms);
            o["pml_peak_rss_mb"] = json!(pml.peak_rss_mb);
            o["ratio"] = json!(self.ratio());
            if let Some(e) = &pml.error {
                o["pml_error"] = json!(e);
            }
        }
        o
    }
}

/// Runs the benches (and PML's script) and prints the table; `Err` when nothing could run.
pub fn bench(args: &BenchArgs) -> Result<(), String> {
    let filter = args.filter.as_deref().unwrap_or("").to_lowercase();
    let selected: Vec<Workload> = load_workloads(&args.workloads)?
        .into_iter()
        .filter(|w| w.id.to_lowercase().contains(&filter))
        .collect();
    if selected.is_empty() {
        return Err(format!("no workload id contains `{filter}`"));
    }
    let (exe, dir) = match &args.exe {
        Some(exe) => {
            if !exe.is_file() {
                return Err(format!("--exe {}: no such file", exe.display()));
            }
            (exe.clone(), std::env::temp_dir().join("pml-bench"))
        }
        None => {
            let exe = build_bench_binary(args.backend)?;
            let dir = exe
                .ancestors()
                .nth(3)
                .ok_or("unexpected bench binary path")?
                .join("pml-bench");
            (exe, dir)
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("workloads.json");
    std::fs::write(&file, workloads_json(&selected).to_string())
        .map_err(|e| format!("{}: {e}", file.display()))?;

    // One criterion folder per backend, so that its "change since last run" compares like
    // with like.
    let criterion_home = dir.join("criterion").join(args.backend.name());
    let steps = selected.len() * if args.vs_pml.is_some() { 2 } else { 1 };
    let mut bar = Bar::builder()
        .desc("bench")
        .total(steps)
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows: Vec<Row> = Vec::new();
    for w in selected {
        bar.set_description(format!("pml-rs {}", w.id));
        let _ = bar.refresh();
        let ours = run_workload(&exe, args.backend, &file, &criterion_home, &w);
        let _ = bar.update(1);
        rows.push(Row {
            workload: w,
            ours,
            pml: None,
        });
    }
    if let Some(python) = &args.vs_pml {
        run_pml(python, &file, &mut rows, &mut bar)?;
    }
    let _ = bar.clear();
    eprintln!();
    println!("pml-rs on the {} backend", args.backend);
    print!("{}", render(&rows, args.vs_pml.is_some()));
    if let Some(path) = &args.json {
        let all: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut o = r.to_json();
                o["backend"] = json!(args.backend.name());
                o
            })
            .collect();
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Builds the criterion bench in the `bench` profile with `backend`'s feature and returns the
/// path of its binary.
fn build_bench_binary(backend: BackendKind) -> Result<PathBuf, String> {
    eprintln!("building the benches (release, feature {backend}) ...");
    let out = Command::new(env!("CARGO"))
        .args([
            "bench",
            "-p",
            "pml-benches",
            "--bench",
            "workloads",
            "--features",
            backend.name(),
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err("building the benches failed".into());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["target"]["name"] == "workloads")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not report the bench binary".into())
}

/// Runs one workload in its own process on `backend`: criterion's median (from its
/// `estimates.json`) and the process's peak memory (which the bench binary prints last).
fn run_workload(
    exe: &Path,
    backend: BackendKind,
    workloads: &Path,
    criterion_home: &Path,
    w: &Workload,
) -> Measure {
    let out = Command::new(exe)
        .args(["--bench", "--exact", &w.id])
        .env(BACKEND_ENV, backend.name())
        .env(WORKLOADS_ENV, workloads)
        .env("CRITERION_HOME", criterion_home)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return failed(format!("running {}: {e}", exe.display())),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return failed(format!("{}: {}", out.status, last.unwrap_or("")));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let peak = stdout
        .lines()
        .find_map(|l| l.strip_prefix(PEAK_RSS_PREFIX))
        .and_then(|v| v.trim().parse().ok());
    let (group, function) = w.group_and_function();
    let estimates = criterion_home
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let median = std::fs::read_to_string(&estimates)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["median"]["point_estimate"].as_f64())
        .map(|ns| ns / 1e6);
    Measure {
        median_ms: median,
        peak_rss_mb: peak,
        error: median
            .is_none()
            .then(|| format!("no criterion estimate at {}", estimates.display())),
    }
}

fn failed(error: String) -> Measure {
    Measure {
        error: Some(error),
        ..Measure::default()
    }
}

/// Runs PML's reference script (next to the default workloads file) on `workloads` with
/// `python` and attaches its rows, matched by kind, name, n and d.
fn run_pml(python: &Path, workloads: &Path, rows: &mut [Row], bar: &mut Bar) -> Result<(), String> {
    let script = pml_benches::default_workloads_path().with_file_name("pml_reference.py");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(workloads)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("running {} {}: {e}", python.display(), script.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout from PML's script")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let _ = bar.update(1);
        let same = |r: &Row| {
            r.pml.is_none()
                && v["kind"] == r.workload.kind.key()
                && v["name"] == r.workload.name()
                && v["n"] == r.workload.entry.n
                && v["d"] == r.workload.entry.d
        };
        if let Some(row) = rows.iter_mut().find(|r| same(r)) {
            row.pml = Some(Measure {
                median_ms: v["median_ms"].as_f64(),
                peak_rss_mb: v["peak_rss_mb"].as_f64(),
                error: v["error"].as_str().map(str::to_string),
            });
            if let Some(next) = rows.iter().find(|r| r.pml.is_none()) {
                bar.set_description(format!("PML {}", next.workload.id));
                let _ = bar.refresh();
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("PML's script exited with {status}"));
    }
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The table: one line per workload.
fn render(rows: &[Row], vs_pml: bool) -> String {
    let mut out = format!("{:<44} {:>12} {:>10}", "workload", "pml-rs ms", "peak MB");
    if vs_pml {
        out += &format!(" {:>12} {:>10} {:>8}", "PML ms", "PML MB", "ratio");
    }
    out += "\n";
    for r in rows {
        let w = &r.workload;
        let name = format!(
            "{} {} n={} d={}",
            w.kind.key(),
            w.name(),
            w.entry.n,
            w.entry.d
        );
        let ours = match &r.ours.error {
            Some(e) => format!("{:>12} {:>10}  error: {e}", "error", "-"),
            None => format!(
                "{:>12} {:>10}",
                ms(r.ours.median_ms),
                ms(r.ours.peak_rss_mb)
            ),
        };
        out += &format!("{name:<44} {ours}");
        if let Some(pml) = &r.pml {
            match &pml.error {
                Some(e) => {
                    out += &format!(
                        " {:>12} {:>10} {:>8}  PML: {e}",
                        "error",
                        ms(pml.peak_rss_mb),
                        "-"
                    )
                }
                None => {
                    out += &format!(
                        " {:>12} {:>10} {:>8}",
                        ms(pml.median_ms),
                        ms(pml.peak_rss_mb),
                        r.ratio().map_or("-".into(), |x| format!("{x:.2}x"))
                    )
                }
            }
        } else if vs_pml {
            out += &format!(" {:>12} {:>10} {:>8}", "missing", "-", "-");
        }
        out += "\n";
    }
    out
}
