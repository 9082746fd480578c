//! Mining a 4096-row batch.
//!
//! The miners keep the `[n, m]` distance matrix on the device: they only read back Int tensors
//! (the labels, the final index lists through `argwhere`, one flag per anchor, the number of
//! candidate pairs of HDCMiner, the bin counts of UniformHistogramMiner), never a float tensor. The second test enforces that on the source
//! (every host read in the library code is listed and reviewed); the first runs every miner on
//! 4096 rows, where a host copy of the matrix per call would be 64 MiB and an `[n, m, m]`
//! triplet mask 2^36 entries.

use std::time::Instant;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use pml_core::{IndicesTuple, Miner, rng::SeededRng, tensor::int_vec};
use pml_miners::*;

type B = NdArray;

/// 1024 classes of 4 rows: clusters around random centers, in 64 dimensions.
fn clustered(n: usize, d: usize, per_class: usize) -> (Tensor<B, 2>, Vec<i64>) {
    let rng = SeededRng::new(4096);
    let normal = || {
        let (u, v) = (1.0 - rng.uniform(), rng.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let centers: Vec<Vec<f32>> = (0..n / per_class)
        .map(|_| (0..d).map(|_| normal()).collect())
        .collect();
    let labels: Vec<i64> = (0..n).map(|i| (i / per_class) as i64).collect();
    let data: Vec<f32> = labels
        .iter()
        .flat_map(|&l| {
            let c = centers[l as usize].clone();
            c.into_iter().map(|x| x + normal()).collect::<Vec<_>>()
        })
        .collect();
    let x = Tensor::from_data(TensorData::new(data, [n, d]), &Default::default());
    (x, labels)
}

fn check(name: &str, tuple: IndicesTuple<B>, labels: &[i64]) -> usize {
    let valid_pos = |a: i64, p: i64| a != p && labels[a as usize] == labels[p as usize];
    let valid_neg = |a: i64, n: i64| labels[a as usize] != labels[n as usize];
    match tuple {
        IndicesTuple::Pairs { a1, p, a2, n } => {
            let (a1, p, a2, n) = (int_vec(a1), int_vec(p), int_vec(a2), int_vec(n));
            assert!(a1.iter().zip(&p).all(|(&a, &p)| valid_pos(a, p)), "{name}");
            assert!(a2.iter().zip(&n).all(|(&a, &n)| valid_neg(a, n)), "{name}");
            a1.len() + a2.len()
        }
        IndicesTuple::Triplets { a, p, n } => {
            let (a, p, n) = (int_vec(a), int_vec(p), int_vec(n));
            for k in 0..a.len() {
                assert!(valid_pos(a[k], p[k]) && valid_neg(a[k], n[k]), "{name}");
            }
            a.len()
        }
    }
}

#[test]
fn every_miner_mines_a_4096_row_batch() {
    let (n, d) = (4096, 64);
    let (x, labels) = clustered(n, d, 4);
    let label_tensor: Tensor<B, 1, Int> =
        pml_core::tensor::int_tensor(&labels, &Default::default());
    let miners: Vec<(&str, MinerConfig)> = vec![
        (
            "AngularMiner",
            MinerConfig::Angular(AngularMinerConfig::new().with_angle(32.0)),
        ),
        (
            "BatchEasyHardMiner",
            MinerConfig::BatchEasyHard(BatchEasyHardMinerConfig::new()),
        ),
        (
            "BatchHardMiner",
            MinerConfig::BatchHard(BatchHardMinerConfig::new()),
        ),
        (
            "DistanceWeightedMiner",
            MinerConfig::DistanceWeighted(DistanceWeightedMinerConfig::new()),
        ),
        ("HDCMiner", MinerConfig::Hdc(HDCMinerConfig::new())),
        (
            "MultiSimilarityMiner",
            MinerConfig::MultiSimilarity(MultiSimilarityMinerConfig::new()),
        ),
        (
            "PairMarginMiner",
            MinerConfig::PairMargin(PairMarginMinerConfig::new()),
        ),
        (
            "TripletMarginMiner",
            MinerConfig::TripletMargin(
                TripletMarginMinerConfig::new().with_type_of_triplets(TypeOfTriplets::Semihard),
            ),
        ),
        (
            "UniformHistogramMiner",
            MinerConfig::UniformHistogram(UniformHistogramMinerConfig::new()),
        ),
    ];
    for (name, config) in miners {
        let start = Instant::now();
        let miner = config.init();
        let tuple = miner.mine(x.clone(), label_tensor.clone(), None);
        let elapsed = start.elapsed();
        let count = check(name, tuple, &labels);
        println!("{name}: {count} indices in {elapsed:?}");
    }
}

/// Every host read in the miners' library code (outside `#[cfg(test)]`), by file. A float
/// read-back (`into_data`, `to_data`, `float_vec`, `into_scalar`) is refused outright.
#[test]
fn miners_never_read_a_float_tensor_back() {
    let allowed_int_reads: &[(&str, usize)] = &[
        // labels, reference labels, one "has weight" flag per anchor.
        ("distance_weighted.rs", 3),
        // the number of candidate pairs (positive, negative).
        ("hdc.rs", 1),
        // the bin counts.
        ("uniform_histogram.rs", 1),
    ];
    // The package folder as cargo gives it when it runs the test (a test binary reused from a
    // build in another checkout must read this checkout's sources), else where it was built.
    let package = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        std::path::PathBuf::from,
    );
    let dir = package.join("src");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        // Doc comments may show host reads in examples; only code counts.
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for forbidden in [
            "into_data",
            "to_data",
            "float_vec",
            "into_scalar",
            "to_vec(",
        ] {
            assert!(
                !code.contains(forbidden),
                "{name} reads a tensor back with `{forbidden}`"
            );
        }
        let int_reads = code.matches("int_vec(").count();
        let allowed = allowed_int_reads
            .iter()
            .find(|(f, _)| *f == name)
            .map_or(0, |(_, k)| *k);
        assert_eq!(
            int_reads, allowed,
            "{name}: {int_reads} `int_vec` host reads, {allowed} reviewed"
        );
        files += 1;
    }
    assert!(files >= 12, "{files}");
}
