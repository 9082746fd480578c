//! Properties every miner must have, over seeded random batches:
//! - every returned tuple is valid: anchor and positive share a label, anchor and negative do
//!   not, no self-pair when the reference is the batch, every index in range;
//! - the output does not depend on the order of the batch (or of the reference set) beyond the
//!   relabelling of the indices (deterministic miners: same set of tuples; sampling miners: same
//!   number of tuples).

use std::collections::BTreeSet;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use pml_core::{IndicesTuple, Miner, Reference, rng::SeededRng, tensor::int_vec};
use pml_distances::{DistanceConfig, LpDistanceConfig};
use pml_miners::*;

type B = NdArray;

/// A batch (and optionally a reference set) as host data.
#[derive(Clone)]
struct Data {
    x: Vec<Vec<f32>>,
    labels: Vec<i64>,
    reference: Option<(Vec<Vec<f32>>, Vec<i64>)>,
}

fn randn(rng: &SeededRng, n: usize, d: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            (0..d)
                .map(|_| {
                    let (u, v) = (1.0 - rng.uniform(), rng.uniform());
                    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
                })
                .collect()
        })
        .collect()
}

fn data(seed: u64, with_reference: bool) -> Data {
    let rng = SeededRng::new(seed);
    let (n, d, classes) = (18, 6, 4);
    let labels = (0..n).map(|_| rng.below(classes) as i64).collect();
    let reference = with_reference.then(|| {
        let m = 13;
        (
            randn(&rng, m, d),
            (0..m).map(|_| rng.below(classes) as i64).collect(),
        )
    });
    Data {
        x: randn(&rng, n, d),
        labels,
        reference,
    }
}

fn tensor(rows: &[Vec<f32>]) -> Tensor<B, 2> {
    let d = rows.first().map_or(0, Vec::len);
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), d]), &Default::default())
}

fn ints(v: &[i64]) -> Tensor<B, 1, Int> {
    pml_core::tensor::int_tensor(v, &Default::default())
}

/// Mined tuples on the host: `(kind, tuples)` with pairs tagged 0 (positive) / 1 (negative).
#[derive(Debug, PartialEq)]
enum Mined {
    Pairs(Vec<(i64, i64)>, Vec<(i64, i64)>),
    Triplets(Vec<(i64, i64, i64)>),
}

fn mine(miner: &AnyMiner, data: &Data) -> Mined {
    let reference = data.reference.as_ref().map(|(r, rl)| Reference {
        embeddings: tensor(r),
        labels: Some(ints(rl)),
    });
    let tuple = miner.mine(tensor(&data.x), ints(&data.labels), reference);
    let counts = miner.last_counts();
    assert_eq!(counts, MinerCounts::of(&tuple));
    match tuple {
        IndicesTuple::Pairs { a1, p, a2, n } => {
            let zip = |x: Vec<i64>, y: Vec<i64>| x.into_iter().zip(y).collect::<Vec<_>>();
            Mined::Pairs(zip(int_vec(a1), int_vec(p)), zip(int_vec(a2), int_vec(n)))
        }
        IndicesTuple::Triplets { a, p, n } => {
            let (a, p, n) = (int_vec(a), int_vec(p), int_vec(n));
            Mined::Triplets((0..a.len()).map(|k| (a[k], p[k], n[k])).collect())
        }
    }
}

fn check_valid(name: &str, mined: &Mined, data: &Data) {
    let is_self = data.reference.is_none();
    let ref_labels = match &data.reference {
        Some((_, rl)) => rl.clone(),
        None => data.labels.clone(),
    };
    let (n, m) = (data.labels.len() as i64, ref_labels.len() as i64);
    let label = |i: i64| {
        assert!((0..n).contains(&i), "{name}: anchor {i} out of range");
        data.labels[i as usize]
    };
    let ref_label = |j: i64| {
        assert!(
            (0..m).contains(&j),
            "{name}: reference index {j} out of range"
        );
        ref_labels[j as usize]
    };
    let positive = |a: i64, p: i64| {
        assert_eq!(label(a), ref_label(p), "{name}: positive ({a}, {p})");
        assert!(!(is_self && a == p), "{name}: self-pair ({a}, {a})");
    };
    let negative = |a: i64, x: i64| {
        assert_ne!(label(a), ref_label(x), "{name}: negative ({a}, {x})");
    };
    match mined {
        Mined::Pairs(pos, neg) => {
            pos.iter().for_each(|&(a, p)| positive(a, p));
            neg.iter().for_each(|&(a, x)| negative(a, x));
        }
        Mined::Triplets(t) => t.iter().for_each(|&(a, p, x)| {
            positive(a, p);
            negative(a, x);
        }),
    }
}

/// `data` with its batch rows reordered by `perm` (new row `i` = old row `perm[i]`), and its
/// reference rows by `ref_perm`.
fn permuted(data: &Data, perm: &[usize], ref_perm: &[usize]) -> Data {
    Data {
        x: perm.iter().map(|&i| data.x[i].clone()).collect(),
        labels: perm.iter().map(|&i| data.labels[i]).collect(),
        reference: data.reference.as_ref().map(|(r, rl)| {
            (
                ref_perm.iter().map(|&j| r[j].clone()).collect(),
                ref_perm.iter().map(|&j| rl[j]).collect(),
            )
        }),
    }
}

fn shuffle(rng: &SeededRng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
}

type Set = BTreeSet<Vec<i64>>;

/// The tuples as sets, indices mapped back to the original order; `unordered` identifies a
/// pair with its mirror.
fn back(mined: &Mined, perm: &[usize], ref_perm: &[usize], unordered: bool) -> (Set, Set) {
    let (a, r) = (
        |i: i64| perm[i as usize] as i64,
        |j: i64| ref_perm[j as usize] as i64,
    );
    let pair = |(i, j): (i64, i64)| {
        let (i, j) = (a(i), r(j));
        if unordered && j < i {
            vec![j, i]
        } else {
            vec![i, j]
        }
    };
    match mined {
        Mined::Pairs(pos, neg) => (
            pos.iter().copied().map(pair).collect(),
            neg.iter().copied().map(pair).collect(),
        ),
        Mined::Triplets(t) => (
            t.iter().map(|&(x, y, z)| vec![a(x), r(y), r(z)]).collect(),
            Set::new(),
        ),
    }
}

fn len(mined: &Mined) -> (usize, usize) {
    match mined {
        Mined::Pairs(p, n) => (p.len(), n.len()),
        Mined::Triplets(t) => (t.len(), 0),
    }
}

/// Every configuration under test: `(name, config, deterministic, unordered pairs)`.
fn miners() -> Vec<(String, MinerConfig, bool, bool)> {
    use BatchMiningStrategy::*;
    let raw = DistanceConfig::Lp(LpDistanceConfig::new().with_normalize_embeddings(false));
    let mut out: Vec<(String, MinerConfig, bool, bool)> = vec![
        (
            "AngularMiner".into(),
            MinerConfig::Angular(AngularMinerConfig::new().with_angle(30.0)),
            true,
            false,
        ),
        (
            "BatchHardMiner".into(),
            MinerConfig::BatchHard(BatchHardMinerConfig::new()),
            true,
            false,
        ),
        (
            "BatchHardMiner/cosine+ranges".into(),
            MinerConfig::BatchHard(
                BatchHardMinerConfig::new()
                    .with_distance(DistanceConfig::cosine())
                    .with_allowed_pos_range(Some([-0.5, 0.9]))
                    .with_allowed_neg_range(Some([-0.9, 0.5])),
            ),
            true,
            false,
        ),
        (
            "HDCMiner".into(),
            MinerConfig::Hdc(HDCMinerConfig::new().with_filter_percentage(0.3)),
            true,
            true,
        ),
        (
            "MultiSimilarityMiner".into(),
            MinerConfig::MultiSimilarity(MultiSimilarityMinerConfig::new()),
            true,
            false,
        ),
        (
            "MultiSimilarityMiner/lp".into(),
            MinerConfig::MultiSimilarity(
                MultiSimilarityMinerConfig::new().with_distance(DistanceConfig::lp()),
            ),
            true,
            false,
        ),
        (
            "PairMarginMiner".into(),
            MinerConfig::PairMargin(PairMarginMinerConfig::new()),
            true,
            false,
        ),
        (
            "PairMarginMiner/cosine".into(),
            MinerConfig::PairMargin(
                PairMarginMinerConfig::new()
                    .with_pos_margin(0.5)
                    .with_neg_margin(0.0)
                    .with_distance(DistanceConfig::cosine()),
            ),
            true,
            false,
        ),
        (
            "DistanceWeightedMiner".into(),
            MinerConfig::DistanceWeighted(
                DistanceWeightedMinerConfig::new().with_nonzero_loss_cutoff(1.9),
            ),
            false,
            false,
        ),
        (
            "UniformHistogramMiner".into(),
            MinerConfig::UniformHistogram(
                UniformHistogramMinerConfig::new()
                    .with_num_bins(7)
                    .with_pos_per_bin(3)
                    .with_neg_per_bin(4),
            ),
            false,
            false,
        ),
    ];
    for t in [
        TypeOfTriplets::All,
        TypeOfTriplets::Hard,
        TypeOfTriplets::Semihard,
        TypeOfTriplets::Easy,
    ] {
        for (dname, distance) in [
            ("lp", DistanceConfig::lp()),
            ("cosine", DistanceConfig::cosine()),
        ] {
            out.push((
                format!("TripletMarginMiner/{t:?}/{dname}"),
                MinerConfig::TripletMargin(
                    TripletMarginMinerConfig::new()
                        .with_type_of_triplets(t)
                        .with_distance(distance),
                ),
                true,
                false,
            ));
        }
    }
    for pos in [Easy, Semihard, Hard, All] {
        for neg in [Easy, Semihard, Hard, All] {
            for (dname, distance) in [("raw", raw.clone()), ("cosine", DistanceConfig::cosine())] {
                let c = BatchEasyHardMinerConfig::new()
                    .with_pos_strategy(pos)
                    .with_neg_strategy(neg)
                    .with_distance(distance);
                if c.try_init().is_ok() {
                    out.push((
                        format!("BatchEasyHardMiner/{pos:?}-{neg:?}/{dname}"),
                        MinerConfig::BatchEasyHard(c),
                        true,
                        false,
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn every_tuple_is_valid_and_mining_commutes_with_reordering() {
    let mut checked = 0;
    for (name, config, deterministic, unordered) in miners() {
        let mut total = 0;
        for seed in 0..3 {
            for with_reference in [false, true] {
                let data = data(seed, with_reference);
                let miner = config.try_init().unwrap();
                let mined = mine(&miner, &data);
                check_valid(&name, &mined, &data);

                let rng = SeededRng::new(100 + seed);
                let perm = shuffle(&rng, data.labels.len());
                let m = data
                    .reference
                    .as_ref()
                    .map_or(perm.len(), |(_, rl)| rl.len());
                let ref_perm = if with_reference {
                    shuffle(&rng, m)
                } else {
                    perm.clone()
                };
                let shuffled = permuted(&data, &perm, &ref_perm);
                let remined = mine(&config.try_init().unwrap(), &shuffled);
                check_valid(&name, &remined, &shuffled);
                if deterministic {
                    let identity: Vec<usize> = (0..data.labels.len()).collect();
                    let ref_identity: Vec<usize> = (0..m).collect();
                    assert_eq!(
                        back(&mined, &identity, &ref_identity, unordered),
                        back(&remined, &perm, &ref_perm, unordered),
                        "{name}: seed {seed}, reference {with_reference}"
                    );
                } else {
                    assert_eq!(len(&mined), len(&remined), "{name}: seed {seed}");
                }
                let (x, y) = len(&mined);
                total += x + y;
                checked += 1;
            }
        }
        // Every configuration mines something on these batches, so the checks above bite.
        assert!(total > 0, "{name}: nothing mined");
    }
    assert!(checked > 150, "{checked}");
}

#[test]
fn embeddings_already_packaged_as_triplets_follows_the_rows() {
    let d = data(0, false);
    let x = tensor(&d.x[..18]);
    let miner = EmbeddingsAlreadyPackagedAsTripletsConfig::new().init();
    let IndicesTuple::Triplets { a, p, n } = miner.mine(x, ints(&d.labels), None) else {
        panic!()
    };
    assert_eq!(int_vec(a), vec![0, 3, 6, 9, 12, 15]);
    assert_eq!(int_vec(p), vec![1, 4, 7, 10, 13, 16]);
    assert_eq!(int_vec(n), vec![2, 5, 8, 11, 14, 17]);
}
