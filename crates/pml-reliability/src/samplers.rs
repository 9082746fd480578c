//! Sampler rows: `MPerClassSampler`, `HierarchicalSampler`, `FixedSetOfTriplets` and
//! `BatchedSampler` on empty, one-class, lone-item, negative and huge labels and impossible
//! sizes; every sampled index must be an item of the dataset.

use pml_train::samplers::{
    BatchSampler, BatchedSampler, FixedSetOfTripletsConfig, HierarchicalSamplerConfig,
    MPerClassSamplerConfig, Sampler, SamplesPerClass,
};

use crate::{Expect, Report};

/// Label sets, each with its name.
fn label_sets() -> Vec<(&'static str, Vec<i64>)> {
    vec![
        ("no labels", vec![]),
        ("one item", vec![3]),
        ("one class only", vec![2; 9]),
        ("every item its own class", (0..9).collect()),
        ("negative labels", vec![-1, -1, -2, -2, -5, -5, -1, -2]),
        (
            "huge labels",
            vec![i64::MAX, i64::MIN, i64::MAX, i64::MIN, 0, 0],
        ),
        ("classes of unequal sizes", vec![0, 0, 0, 0, 0, 0, 1, 2, 2]),
    ]
}

/// Every index of every batch is below `len`, and batches are not empty.
fn check_batches(batches: &[Vec<usize>], len: usize) -> Result<(), String> {
    check_some_batches(batches, len, false)
}

/// [`check_batches`], allowing empty batches when `allow_empty` (HierarchicalSampler with
/// `samples_per_class = all` skips classes larger than a sub-batch, as PML's does, and
/// documents that its batches can then be short, down to empty).
fn check_some_batches(batches: &[Vec<usize>], len: usize, allow_empty: bool) -> Result<(), String> {
    if let Some(b) = batches.iter().find(|b| b.is_empty() && !allow_empty) {
        return Err(format!("an empty batch among {} ({b:?})", batches.len()));
    }
    match batches.iter().flatten().find(|&&i| i >= len) {
        Some(i) => Err(format!("index {i} of a dataset of {len} items")),
        None => Ok(()),
    }
}

fn m_per_class(report: &mut Report) {
    let configs = [
        (
            "m=2, batch_size=None",
            MPerClassSamplerConfig::new(2).with_length_before_new_iter(40),
        ),
        (
            "m=2, batch_size=4",
            MPerClassSamplerConfig::new(2)
                .with_batch_size(Some(4))
                .with_length_before_new_iter(40),
        ),
        (
            "m=4, batch_size=8 (m above class sizes)",
            MPerClassSamplerConfig::new(4)
                .with_batch_size(Some(8))
                .with_length_before_new_iter(40),
        ),
        ("m=0", MPerClassSamplerConfig::new(0)),
        (
            "batch_size=3 (not a multiple of m=2)",
            MPerClassSamplerConfig::new(2).with_batch_size(Some(3)),
        ),
        (
            "batch_size=0",
            MPerClassSamplerConfig::new(2).with_batch_size(Some(0)),
        ),
        (
            "length_before_new_iter=0",
            MPerClassSamplerConfig::new(2).with_length_before_new_iter(0),
        ),
        (
            "length_before_new_iter=1",
            MPerClassSamplerConfig::new(2).with_length_before_new_iter(1),
        ),
    ];
    for (config_name, config) in configs {
        for (labels_name, labels) in label_sets() {
            report.check(
                format!("MPerClassSampler({config_name})"),
                labels_name,
                Expect::Data,
                || {
                    let sampler = config.try_init(&labels)?;
                    let epoch = sampler.sample_epoch();
                    if epoch.len() != Sampler::num_samples(&sampler) {
                        return Ok(Err(format!(
                            "{} samples, num_samples says {}",
                            epoch.len(),
                            Sampler::num_samples(&sampler)
                        )));
                    }
                    Ok(check_batches(&[epoch], labels.len())
                        .and_then(|()| check_batches(&sampler.sample_batches(), labels.len())))
                },
            );
        }
    }
}

fn hierarchical(report: &mut Report) {
    let two_levels = |labels: &[i64]| -> Vec<Vec<i64>> {
        labels.iter().map(|&l| vec![l, l.wrapping_div(2)]).collect()
    };
    let configs = [
        (
            "batch_size=4, samples_per_class=2",
            HierarchicalSamplerConfig::new(4, SamplesPerClass::Count(2)),
        ),
        (
            "batch_size=4, samples_per_class=all",
            HierarchicalSamplerConfig::new(4, SamplesPerClass::All),
        ),
        (
            "batch_size=3 (not a multiple of 2 super classes)",
            HierarchicalSamplerConfig::new(3, SamplesPerClass::Count(1)),
        ),
        (
            "batch_size=0",
            HierarchicalSamplerConfig::new(0, SamplesPerClass::Count(1)),
        ),
        (
            "samples_per_class=0",
            HierarchicalSamplerConfig::new(4, SamplesPerClass::Count(0)),
        ),
        (
            "outer_label=5 (past the label rows)",
            HierarchicalSamplerConfig::new(4, SamplesPerClass::Count(2)).with_outer_label(5),
        ),
    ];
    for (config_name, config) in configs {
        for (labels_name, labels) in label_sets() {
            let rows = two_levels(&labels);
            report.check(
                format!("HierarchicalSampler({config_name})"),
                labels_name,
                Expect::Data,
                || {
                    let sampler = config.try_init(&rows)?;
                    let all = config.samples_per_class == SamplesPerClass::All;
                    Ok(check_some_batches(
                        &sampler.sample_batches(),
                        rows.len(),
                        all,
                    ))
                },
            );
        }
        report.check(
            format!("HierarchicalSampler({config_name})"),
            "label rows of different widths",
            Expect::Data,
            || {
                let sampler = config.try_init(&[vec![0, 0], vec![1], vec![2, 1, 0], vec![3, 1]])?;
                Ok(check_batches(&sampler.sample_batches(), 4))
            },
        );
    }
}

fn fixed_set_of_triplets(report: &mut Report) {
    for num_triplets in [0, 5] {
        for (labels_name, labels) in label_sets() {
            report.check(
                format!("FixedSetOfTriplets(num_triplets={num_triplets})"),
                labels_name,
                Expect::Data,
                || {
                    let sampler = FixedSetOfTripletsConfig::new(num_triplets).try_init(&labels)?;
                    let len = labels.len();
                    for t in sampler.triplets() {
                        if t.iter().any(|&i| i >= len)
                            || labels[t[0]] != labels[t[1]]
                            || labels[t[0]] == labels[t[2]]
                        {
                            return Ok(Err(format!("triplet {t:?} with labels {labels:?}")));
                        }
                    }
                    Ok(check_batches(&[sampler.sample_epoch()], len))
                },
            );
        }
    }
}

fn batched(report: &mut Report) {
    let labels: Vec<i64> = vec![0, 0, 1, 1];
    for (name, batch_size, drop_last) in [
        ("batch_size=0", 0, false),
        ("batch_size=9 > items, drop_last", 9, true),
        ("batch_size=3", 3, false),
    ] {
        let expect = if batch_size == 0 {
            Expect::Contract(&["batch_size"])
        } else {
            Expect::Data
        };
        report.check(format!("BatchedSampler({name})"), "4 items", expect, || {
            let inner = MPerClassSamplerConfig::new(2)
                .with_length_before_new_iter(4)
                .try_init(&labels)?;
            let sampler = BatchedSampler::new(inner, batch_size, drop_last);
            let batches = sampler.sample_batches();
            if batches.len() != sampler.num_batches() {
                return Ok(Err(format!(
                    "{} batches, num_batches says {}",
                    batches.len(),
                    sampler.num_batches()
                )));
            }
            Ok(check_batches(&batches, labels.len()))
        });
    }
}

pub(crate) fn run(report: &mut Report) {
    m_per_class(report);
    hierarchical(report);
    fixed_set_of_triplets(report);
    batched(report);
}
