//! PML's retrieval metrics, computed on the host from the `[n, k]` neighbour indices.
//!
//! For a query `q` with neighbours `n_1, ..., n_k` (best first), `rel_j = 1` when the label of
//! `n_j` matches `q`'s, and `R` = the number of references matching `q`'s label (minus one for
//! the query itself when the reference includes the queries):
//! - `precision_at_1 = rel_1`
//! - `r_precision = Σ_{j ≤ min(R, k)} rel_j / min(R, k)`
//! - `mean_average_precision_at_r = Σ_{j ≤ min(R, k)} rel_j P@j / R`, with `P@j = Σ_{i ≤ j} rel_i / j`
//! - `mean_average_precision = Σ_{j ≤ k} rel_j P@j / R`
//! - `mean_reciprocal_rank = 1 / (first j with rel_j = 1)`, or 0
//!
//! Queries whose label is lone are left out; the per-query values are averaged by
//! [`MetricContext::reduce`].

use std::collections::HashMap;

use crate::{KnnContext, Labels, MetricContext, MetricValue};

/// Which per-query value to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retrieval {
    PrecisionAt1,
    RPrecision,
    MapAtR,
    Map,
    Mrr,
}

pub(crate) fn compute(metric: Retrieval, ctx: &MetricContext<'_>) -> MetricValue {
    let knn: &KnnContext = ctx.knn.expect("retrieval metrics need the kNN results");
    let kept: Vec<usize> = (0..ctx.query_labels.len())
        .filter(|&i| knn.not_lone_query_mask[i])
        .collect();
    if kept.is_empty() {
        return ctx.nan_value();
    }
    let counts: HashMap<&[i64], usize> = knn
        .label_counts
        .iter()
        .map(|(l, c)| (l.as_slice(), *c))
        .collect();
    let k = knn.neighbors.k;
    let self_count = i64::from(ctx.ref_includes_query);
    let per_query: Vec<f64> = kept
        .iter()
        .map(|&i| {
            let label = ctx.query_labels.row(i);
            let rel: Vec<bool> = knn
                .neighbors
                .indices_of(i)
                .iter()
                .map(|&j| ctx.same_label(label, ctx.reference_labels.row(j)))
                .collect();
            // PML's relevance mask: the first `R` columns, where `R` counts by label equality.
            let r = counts.get(label).map_or(0, |&c| c as i64) - self_count;
            let limit = (r.max(0) as usize).min(k);
            match metric {
                Retrieval::PrecisionAt1 => rel.first().map_or(0.0, |&x| f64::from(u8::from(x))),
                Retrieval::RPrecision => {
                    rel[..limit].iter().filter(|&&x| x).count() as f64 / limit as f64
                }
                Retrieval::MapAtR | Retrieval::Map => {
                    let end = if metric == Retrieval::MapAtR {
                        limit
                    } else {
                        k
                    };
                    let mut hits = 0usize;
                    let mut sum = 0.0;
                    for (j, &x) in rel[..end].iter().enumerate() {
                        if x {
                            hits += 1;
                            sum += hits as f64 / (j + 1) as f64;
                        }
                    }
                    sum / r as f64
                }
                Retrieval::Mrr => rel
                    .iter()
                    .position(|&x| x)
                    .map_or(0.0, |j| 1.0 / (j + 1) as f64),
            }
        })
        .collect();
    let kept_labels: Labels = ctx.query_labels.select(&kept);
    ctx.reduce(&per_query, &kept_labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Neighbors;

    #[test]
    fn hand_checked_values() {
        // One query of label 0; reference labels [0, 1, 0, 0, 1]; neighbours in order
        // 1, 0, 4, 2, 3 → rel = [0, 1, 0, 1, 1]; R = 3.
        let query = Labels::new(vec![0]);
        let reference = Labels::new(vec![0, 1, 0, 0, 1]);
        let knn = KnnContext {
            neighbors: Neighbors {
                n: 1,
                k: 5,
                distances: vec![0.0; 5],
                indices: vec![1, 0, 4, 2, 3],
            },
            label_counts: vec![(vec![0], 3)],
            lone_query_labels: vec![],
            not_lone_query_mask: vec![true],
        };
        let ctx = MetricContext {
            query_labels: &query,
            reference_labels: &reference,
            ref_includes_query: false,
            avg_of_avgs: false,
            return_per_class: false,
            knn: Some(&knn),
            cluster_labels: None,
            comparison: None,
        };
        let v = |m| compute(m, &ctx).as_scalar().unwrap();
        assert_eq!(v(Retrieval::PrecisionAt1), 0.0);
        assert!((v(Retrieval::RPrecision) - 1.0 / 3.0).abs() < 1e-12);
        // MAP@R: hit at rank 2 within the first R = 3 → (1/2) / 3.
        assert!((v(Retrieval::MapAtR) - 0.5 / 3.0).abs() < 1e-12);
        // MAP: hits at ranks 2, 4, 5 → (1/2 + 2/4 + 3/5) / 3.
        assert!((v(Retrieval::Map) - (0.5 + 0.5 + 0.6) / 3.0).abs() < 1e-12);
        assert_eq!(v(Retrieval::Mrr), 0.5);
    }
}
