//! Miner rows: every miner on every labelled bad batch; the mined tuples must index into the
//! batch (and the reference) and respect the labels.

use pml_core::{IndicesTuple, Miner, PmlError, Reference, tensor::int_vec};
use pml_miners::{AnyMiner, MinerConfig};
use serde_json::json;

use crate::{
    Backend, Report,
    batch::{Batch, labeled_batches},
};

fn miners() -> Vec<(String, Result<AnyMiner, PmlError>)> {
    MinerConfig::PML_NAMES
        .iter()
        .map(|&name| {
            let built = serde_json::from_value::<MinerConfig>(json!({"name": name, "params": {}}))
                .map_err(|e| PmlError::invalid_input("spec", e.to_string()))
                .and_then(|c| c.try_init());
            (name.to_string(), built)
        })
        .collect()
}

/// Checks that every tuple indexes into the batch (anchors) and the reference (the others), and
/// that positives share the anchor's label and negatives do not.
fn check_tuples(
    tuples: IndicesTuple<Backend>,
    labels: &[i64],
    ref_labels: Option<&[i64]>,
) -> Result<(), String> {
    let self_reference = ref_labels.is_none();
    let refs = ref_labels.unwrap_or(labels);
    let lists: Vec<(&str, Vec<i64>, Vec<i64>, bool)> = match tuples {
        IndicesTuple::Pairs { a1, p, a2, n } => vec![
            ("positive pair", int_vec(a1), int_vec(p), true),
            ("negative pair", int_vec(a2), int_vec(n), false),
        ],
        IndicesTuple::Triplets { a, p, n } => {
            let a = int_vec(a);
            vec![
                ("triplet positive", a.clone(), int_vec(p), true),
                ("triplet negative", a, int_vec(n), false),
            ]
        }
    };
    for (what, anchors, others, same) in lists {
        if anchors.len() != others.len() {
            return Err(format!(
                "{what}s: {} anchors, {} others",
                anchors.len(),
                others.len()
            ));
        }
        for (&a, &o) in anchors.iter().zip(&others) {
            let (Some(la), Some(lo)) = (
                usize::try_from(a).ok().and_then(|a| labels.get(a)),
                usize::try_from(o).ok().and_then(|o| refs.get(o)),
            ) else {
                return Err(format!(
                    "{what} ({a}, {o}) out of range ({} x {})",
                    labels.len(),
                    refs.len()
                ));
            };
            if (la == lo) != same || (same && self_reference && a == o) {
                return Err(format!("{what} ({a}, {o}) with labels ({la}, {lo})"));
            }
        }
    }
    Ok(())
}

/// Every argument of `mine`: it returns no `Result` and documents its panics, which name one of
/// these (DESIGN.md, Errors).
const MINER_ARGS: &[&str] = &["embeddings", "labels", "ref_emb", "ref_labels", "reference"];

fn call(miner: &AnyMiner, batch: &Batch) -> Result<Result<(), String>, PmlError> {
    let device = Default::default();
    let labels = batch.labels.clone().unwrap_or_default();
    let reference = batch
        .reference_tensors::<Backend>(&device)
        .map(|(embeddings, labels)| Reference { embeddings, labels });
    let tuples = miner.mine(
        batch.embeddings(&device),
        batch
            .label_tensor(&device)
            .unwrap_or_else(|| pml_core::tensor::int_tensor(&[], &device)),
        reference,
    );
    if matches!(miner, AnyMiner::EmbeddingsAlreadyPackagedAsTriplets(_)) {
        // PML's EmbeddingsAlreadyPackagedAsTriplets ignores labels and references: rows
        // (3i, 3i + 1, 3i + 2) are the triplets, whatever their labels.
        let IndicesTuple::Triplets { a, p, n } = tuples else {
            return Ok(Err("pairs from EmbeddingsAlreadyPackagedAsTriplets".into()));
        };
        let rows = batch.rows as i64;
        let bad = [a, p, n]
            .into_iter()
            .flat_map(int_vec)
            .find(|&i| !(0..rows).contains(&i));
        return Ok(bad.map_or(Ok(()), |i| Err(format!("index {i} of a batch of {rows}"))));
    }
    let ref_labels = batch
        .reference
        .as_ref()
        .map(|r| r.labels.clone().unwrap_or_default());
    Ok(check_tuples(tuples, &labels, ref_labels.as_deref()))
}

pub(crate) fn run(report: &mut Report) {
    for (name, miner) in miners() {
        let miner = match miner {
            Ok(m) => m,
            Err(e) => {
                report.check(
                    format!("{name}::init"),
                    "its spec",
                    crate::Expect::Data,
                    || Err(e),
                );
                continue;
            }
        };
        // `mine` takes labels as a tensor: the "no labels" batch does not apply.
        for batch in labeled_batches().iter().filter(|b| b.labels.is_some()) {
            let expect = crate::Expect::Contract(MINER_ARGS);
            report.check(format!("{name}::mine"), batch.name, expect, || {
                call(&miner, batch)
            });
        }
    }
}
