//! Property tests: the blocked kNN equals a brute-force search on random data, for both kinds
//! of metric (distance and similarity), whatever the block sizes.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use pml_eval::{KnnConfig, KnnMetric, TopKSelection};
use proptest::prelude::*;

type B = NdArray;

fn tensor(values: &[f32], rows: usize, cols: usize) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [rows, cols]),
        &Default::default(),
    )
}

/// Brute force in f64: the score of every reference, ranked best first, ties by index.
fn brute_force(q: &[f32], r: &[f32], d: usize, metric: KnnMetric) -> Vec<Vec<(f64, usize)>> {
    let norm = |v: &[f32]| {
        v.iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12)
    };
    q.chunks(d)
        .map(|qi| {
            let mut row: Vec<(f64, usize)> = r
                .chunks(d)
                .enumerate()
                .map(|(j, rj)| {
                    let dot: f64 = qi
                        .iter()
                        .zip(rj)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    let score = match metric {
                        KnnMetric::L2 => qi
                            .iter()
                            .zip(rj)
                            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                            .sum(),
                        KnnMetric::InnerProduct => dot,
                        KnnMetric::Cosine => dot / (norm(qi) * norm(rj)),
                    };
                    // `+ 0.0` turns -0.0 into 0.0: they are the same score.
                    (score + 0.0, j)
                })
                .collect();
            row.sort_by(|a, b| {
                let o = a.0.total_cmp(&b.0);
                let o = if metric.is_similarity() {
                    o.reverse()
                } else {
                    o
                };
                o.then(a.1.cmp(&b.1))
            });
            row
        })
        .collect()
}

fn config(metric: KnnMetric, qb: usize, rb: usize) -> KnnConfig {
    KnnConfig::new()
        .with_metric(metric)
        .with_query_batch_size(qb)
        .with_reference_batch_size(rb)
        .with_selection(TopKSelection::Host)
        .with_progress(false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Small integer coordinates: every score is exact in f32 and ties are frequent, so the
    /// indices must equal the brute force's exactly (ties resolved by index, as faiss).
    #[test]
    fn exact_on_integer_data(
        n in 1usize..12, m in 1usize..40, d in 1usize..5, k in 1usize..45,
        qb in 1usize..8, rb in 1usize..16, l2 in any::<bool>(), seed in any::<u64>(),
    ) {
        let mut s = seed;
        let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 33) % 5) as f32 - 2.0 };
        let q: Vec<f32> = (0..n * d).map(|_| next()).collect();
        let r: Vec<f32> = (0..m * d).map(|_| next()).collect();
        let metric = if l2 { KnnMetric::L2 } else { KnnMetric::InnerProduct };
        let nn = config(metric, qb, rb).init().search(tensor(&q, n, d), tensor(&r, m, d), k).unwrap();
        let want = brute_force(&q, &r, d, metric);
        prop_assert_eq!(nn.k, k.min(m));
        for (i, row) in want.iter().enumerate() {
            let idx: Vec<usize> = row.iter().take(nn.k).map(|x| x.1).collect();
            prop_assert_eq!(nn.indices_of(i), idx.as_slice());
            for (got, exp) in nn.distances_of(i).iter().zip(row) {
                prop_assert_eq!(f64::from(*got), exp.0);
            }
        }
    }

    /// The query-is-reference search (half the products, tiles fed to both sides) equals the
    /// brute force exactly, ties included, for every tile size.
    #[test]
    fn self_search_exact_on_integer_data(
        n in 1usize..40, d in 1usize..5, k in 1usize..45, tile in 1usize..16, metric_id in 0usize..2,
        seed in any::<u64>(),
    ) {
        let mut s = seed;
        let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 33) % 5) as f32 - 2.0 };
        let x: Vec<f32> = (0..n * d).map(|_| next()).collect();
        let metric = [KnnMetric::L2, KnnMetric::InnerProduct][metric_id];
        let nn = config(metric, tile, 1).init().search_self(tensor(&x, n, d), k).unwrap();
        let want = brute_force(&x, &x, d, metric);
        prop_assert_eq!(nn.k, k.min(n));
        for (i, row) in want.iter().enumerate() {
            let idx: Vec<usize> = row.iter().take(nn.k).map(|x| x.1).collect();
            prop_assert_eq!(nn.indices_of(i), idx.as_slice());
            for (got, exp) in nn.distances_of(i).iter().zip(row) {
                prop_assert_eq!(f64::from(*got), exp.0);
            }
        }
    }

    /// Random floats: the returned scores are the brute force's best scores (to float
    /// precision), and each returned index really has its returned score.
    #[test]
    fn matches_brute_force_on_random_data(
        n in 1usize..10, m in 1usize..60, d in 1usize..9, k in 1usize..20,
        qb in 1usize..6, rb in 1usize..25, metric_id in 0usize..3, seed in any::<u64>(),
    ) {
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 };
        let q: Vec<f32> = (0..n * d).map(|_| next()).collect();
        let r: Vec<f32> = (0..m * d).map(|_| next()).collect();
        let metric = [KnnMetric::L2, KnnMetric::InnerProduct, KnnMetric::Cosine][metric_id];
        let nn = config(metric, qb, rb).init().search(tensor(&q, n, d), tensor(&r, m, d), k).unwrap();
        let want = brute_force(&q, &r, d, metric);
        for (i, row) in want.iter().enumerate() {
            let score_of: std::collections::HashMap<usize, f64> = row.iter().map(|&(s, j)| (j, s)).collect();
            for (c, (&j, &got)) in nn.indices_of(i).iter().zip(nn.distances_of(i)).enumerate() {
                prop_assert!((f64::from(got) - row[c].0).abs() < 1e-4, "rank {}: {} vs {}", c, got, row[c].0);
                prop_assert!((f64::from(got) - score_of[&j]).abs() < 1e-4);
            }
        }
    }
}

#[test]
fn same_results_for_every_block_size() {
    let (n, m, d) = (37, 211, 6);
    let mut s = 12345u64;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((s >> 40) % 7) as f32
    };
    let q: Vec<f32> = (0..n * d).map(|_| next()).collect();
    let r: Vec<f32> = (0..m * d).map(|_| next()).collect();
    let base = config(KnnMetric::L2, 1024, 1 << 14)
        .init()
        .search(tensor(&q, n, d), tensor(&r, m, d), 25)
        .unwrap();
    for (qb, rb) in [(1, 1), (5, 17), (37, 211), (64, 50)] {
        let other = config(KnnMetric::L2, qb, rb)
            .init()
            .search(tensor(&q, n, d), tensor(&r, m, d), 25)
            .unwrap();
        assert_eq!(other, base, "blocks {qb} x {rb}");
    }
}

/// Blocks large enough for the multi-threaded selection (rows and columns), uneven tiles, many
/// ties: both searches still equal the brute force exactly.
#[test]
fn threaded_selection_matches_brute_force() {
    let (n, d, k) = (700, 3, 20);
    let mut s = 99u64;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((s >> 40) % 5) as f32 - 2.0
    };
    let x: Vec<f32> = (0..n * d).map(|_| next()).collect();
    for metric in [KnnMetric::L2, KnnMetric::InnerProduct] {
        let want = brute_force(&x, &x, d, metric);
        let knn = config(metric, 300, 350).init();
        let by_self = knn.search_self(tensor(&x, n, d), k).unwrap();
        let general = knn.search(tensor(&x, n, d), tensor(&x, n, d), k).unwrap();
        for (i, row) in want.iter().enumerate() {
            let idx: Vec<usize> = row.iter().take(k).map(|x| x.1).collect();
            assert_eq!(by_self.indices_of(i), idx.as_slice(), "{metric:?} row {i}");
            assert_eq!(general.indices_of(i), idx.as_slice(), "{metric:?} row {i}");
        }
        assert_eq!(by_self, general);
    }
}
