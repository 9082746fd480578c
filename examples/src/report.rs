//! What the examples write: the per-epoch CSV, the charts, and the final JSON line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pml_eval::Accuracies;
use pml_train::trainers::EpochRecord;
use serde_json::{Map, Value, json};

use crate::plot;

/// The metrics of `accuracies` as a JSON object of numbers rounded to 4 decimals (the
/// reference script's `round(float(v), 4)`).
pub fn rounded(accuracies: &Accuracies) -> Value {
    let map: Map<String, Value> = accuracies
        .iter()
        .filter_map(|(k, v)| {
            let v = v.as_scalar()?;
            Some((k.clone(), json!((v * 1e4).round() / 1e4)))
        })
        .collect();
    Value::Object(map)
}

/// One row per epoch: `epoch`, the training `loss`, then every validation metric (epoch 0 is
/// the untrained model, without a loss).
pub fn epoch_table(before: &Accuracies, history: &[EpochRecord]) -> (Vec<String>, Vec<Vec<f64>>) {
    let metrics: Vec<String> = before.keys().cloned().collect();
    let mut header = vec!["epoch".to_string(), "loss".to_string()];
    header.extend(metrics.iter().cloned());
    let mut rows = vec![{
        let mut r = vec![0.0, f64::NAN];
        r.extend(
            metrics
                .iter()
                .map(|m| before[m].as_scalar().unwrap_or(f64::NAN)),
        );
        r
    }];
    let last = history.iter().map(|r| r.epoch).max().unwrap_or(0);
    for epoch in 1..=last {
        let get = |split: &str, name: &str| {
            history
                .iter()
                .find(|r| r.epoch == epoch && r.split == split)
                .and_then(|r| r.values.get(name).copied())
                .unwrap_or(f64::NAN)
        };
        let mut r = vec![epoch as f64, get("train", "Loss")];
        r.extend(metrics.iter().map(|m| get("valid", m)));
        rows.push(r);
    }
    (header, rows)
}

/// Writes `metrics.csv`, `loss.png`, `map_at_r.png` and `embeddings_pca.png` into `dir`
/// (created if needed) and returns their paths.
///
/// `embeddings` are the retrieval set's final embeddings (`[n, d]` row-major) with their
/// `labels`.
///
/// # Errors
/// When a file cannot be written.
pub fn write_outputs(
    dir: &Path,
    header: &[String],
    rows: &[Vec<f64>],
    embeddings: &[f32],
    d: usize,
    labels: &[i64],
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut csv = header.join(",") + "\n";
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, v)| match (i, v.is_nan()) {
                (0, _) => format!("{v}"),
                (_, true) => String::new(),
                _ => format!("{v:.6}"),
            })
            .collect();
        let _ = writeln!(csv, "{}", cells.join(","));
    }
    let csv_path = dir.join("metrics.csv");
    std::fs::write(&csv_path, csv)
        .map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;

    let column = |name: &str| header.iter().position(|h| h == name);
    let trained: Vec<&Vec<f64>> = rows.iter().filter(|r| r[0] > 0.0).collect();
    let mut written = vec![csv_path];
    if let Some(c) = column("loss") {
        let path = dir.join("loss.png");
        let xs: Vec<f64> = trained.iter().map(|r| r[0]).collect();
        let ys: Vec<f64> = trained.iter().map(|r| r[c]).collect();
        plot::line_chart(&path, &xs, &ys, plot::PALETTE[3])?;
        written.push(path);
    }
    if let Some(c) = column("mean_average_precision_at_r") {
        let path = dir.join("map_at_r.png");
        let xs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        let ys: Vec<f64> = rows.iter().map(|r| r[c]).collect();
        plot::line_chart(&path, &xs, &ys, plot::PALETTE[0])?;
        written.push(path);
    }
    let path = dir.join("embeddings_pca.png");
    plot::scatter(&path, &plot::pca_2d(embeddings, d), labels)?;
    written.push(path);
    Ok(written)
}
