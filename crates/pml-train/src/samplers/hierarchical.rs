//! PML's `HierarchicalSampler`.

use std::sync::Mutex;

use burn::config::Config;
use pml_core::{PmlError, rng::SeededRng};
use serde::{Deserialize, Serialize};

use super::common::{labels_to_indices, safe_random_choice, shuffle};
use super::sampler::BatchSampler;

/// How many samples of a class [`HierarchicalSampler`] takes: a count, or all of them (PML's
/// `"all"`; serialized as `"all"` or a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplesPerClass {
    /// Every sample of the class (PML's `"all"`).
    All,
    /// This many samples, drawn without replacement when the class has enough.
    #[serde(untagged)]
    Count(usize),
}

/// Configuration of [`HierarchicalSampler`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct HierarchicalSamplerConfig {
    /// Indices per batch (at most; see [`HierarchicalSampler`]).
    pub batch_size: usize,
    /// Samples taken from each class in a batch.
    pub samples_per_class: SamplesPerClass,
    /// Batches built for each combination of super classes.
    #[config(default = 4)]
    pub batches_per_super_tuple: usize,
    /// Super classes sharing a batch, `batch_size / super_classes_per_batch` indices each.
    #[config(default = 2)]
    pub super_classes_per_batch: usize,
    /// The column of the label rows that holds the class.
    #[config(default = 0)]
    pub inner_label: usize,
    /// The column of the label rows that holds the super class.
    #[config(default = 1)]
    pub outer_label: usize,
    /// Seed of the sampler's generator (PML draws from numpy's global generator).
    #[config(default = 0)]
    pub seed: u64,
}

impl HierarchicalSamplerConfig {
    /// Builds the sampler for a dataset whose item `i` has the label row `labels[i]` (class in
    /// column `inner_label`, super class in column `outer_label`), with PML's checks, and draws
    /// the first epoch as PML's constructor does.
    ///
    /// # Errors
    /// [`PmlError::InvalidArgument`] naming the argument when `super_classes_per_batch` is 0 or
    /// does not divide `batch_size`, `samples_per_class` is 0 or does not divide
    /// `batch_size / super_classes_per_batch`, a label row lacks the `inner_label` or
    /// `outer_label` column, or there are fewer super classes than `super_classes_per_batch`.
    pub fn try_init(&self, labels: &[Vec<i64>]) -> Result<HierarchicalSampler, PmlError> {
        if self.batch_size == 0 {
            return Err(PmlError::invalid_argument(
                "batch_size",
                0,
                "must be positive",
            ));
        }
        let k = self.super_classes_per_batch;
        if k == 0 || !self.batch_size.is_multiple_of(k) {
            return Err(PmlError::invalid_argument(
                "super_classes_per_batch",
                k,
                format!(
                    "must be positive and divide batch_size ({})",
                    self.batch_size
                ),
            ));
        }
        let sub_batch_len = self.batch_size / k;
        if let SamplesPerClass::Count(n) = self.samples_per_class
            && (n == 0 || !sub_batch_len.is_multiple_of(n))
        {
            return Err(PmlError::invalid_argument(
                "samples_per_class",
                n,
                format!(
                    "must be positive and divide batch_size / super_classes_per_batch ({sub_batch_len})"
                ),
            ));
        }
        let column = |row: &[i64], i: usize, name: &str| {
            row.get(i).copied().ok_or_else(|| {
                PmlError::invalid_argument(
                    name,
                    i,
                    format!("a label row has only {} columns", row.len()),
                )
            })
        };
        let (mut supers, mut classes) = (Vec::with_capacity(labels.len()), Vec::new());
        for row in labels {
            supers.push(column(row, self.outer_label, "outer_label")?);
            classes.push(column(row, self.inner_label, "inner_label")?);
        }
        let mut super_groups: Vec<(i64, Vec<Vec<usize>>)> = labels_to_indices(&supers)
            .into_iter()
            .map(|(super_label, members)| {
                let member_classes: Vec<i64> = members.iter().map(|&i| classes[i]).collect();
                let per_class = labels_to_indices(&member_classes)
                    .into_iter()
                    .map(|(_, positions)| positions.into_iter().map(|p| members[p]).collect())
                    .collect();
                (super_label, per_class)
            })
            .collect();
        super_groups.sort_by_key(|(super_label, _)| *super_label);
        if super_groups.len() < k {
            return Err(PmlError::invalid_argument(
                "super_classes_per_batch",
                k,
                format!("the labels have only {} super classes", super_groups.len()),
            ));
        }
        let sampler = HierarchicalSampler {
            sub_batch_len,
            samples_per_class: self.samples_per_class,
            batches_per_super_tuple: self.batches_per_super_tuple,
            super_tuples: combinations(super_groups.len(), k),
            classes: super_groups.into_iter().map(|(_, c)| c).collect(),
            rng: SeededRng::new(self.seed),
            last_items: Mutex::new(0),
        };
        sampler.sample_batches();
        Ok(sampler)
    }

    /// Builds the sampler.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self, labels: &[Vec<i64>]) -> HierarchicalSampler {
        self.try_init(labels).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// All `k`-subsets of `0..n` in lexicographic order (Python's `itertools.combinations`).
fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..k).collect();
    if k > n {
        return out;
    }
    loop {
        out.push(current.clone());
        let Some(i) = (0..k).rev().find(|&i| current[i] < n - k + i) else {
            return out;
        };
        current[i] += 1;
        for j in i + 1..k {
            current[j] = current[j - 1] + 1;
        }
    }
}

/// Batches drawn from a few super classes at a time (PML's `HierarchicalSampler`, after Cakir et
/// al., "Deep Metric Learning to Rank", 2019), seeded; a [`BatchSampler`].
///
/// For every combination of `super_classes_per_batch` super classes, `batches_per_super_tuple`
/// batches are built: for each super class of the combination, its classes are shuffled and
/// `samples_per_class` samples (with replacement when a class has fewer) of class after class
/// fill a sub-batch of `batch_size / super_classes_per_batch` indices, skipping a class that
/// would overflow it; the sub-batches together are shuffled into one batch. An epoch is all these
/// batches, shuffled. A batch is shorter than `batch_size` when a super class lacks the samples
/// (for example with `SamplesPerClass::All`).
///
/// ```
/// use pml_train::samplers::{BatchSampler, HierarchicalSamplerConfig, SamplesPerClass};
/// // 3 super classes x 2 classes x 5 samples: rows [class, super class].
/// let labels: Vec<Vec<i64>> = (0..30).map(|i| vec![i / 5, i / 10]).collect();
/// let sampler = HierarchicalSamplerConfig::new(8, SamplesPerClass::Count(2)).init(&labels);
/// let batches = sampler.sample_batches();
/// assert_eq!(batches.len(), 3 * 4); // 3 pairs of super classes, 4 batches each
/// assert!(batches.iter().all(|b| b.len() == 8));
/// ```
#[derive(Debug)]
pub struct HierarchicalSampler {
    sub_batch_len: usize,
    samples_per_class: SamplesPerClass,
    batches_per_super_tuple: usize,
    super_tuples: Vec<Vec<usize>>,
    /// Per super class (sorted by super label): the indices of each of its classes.
    classes: Vec<Vec<Vec<usize>>>,
    rng: SeededRng,
    last_items: Mutex<usize>,
}

impl HierarchicalSampler {
    /// One sub-batch from the classes of one super class (PML's inner loop of `reshuffle`).
    fn sub_batch(&self, classes: &[Vec<usize>]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..classes.len()).collect();
        shuffle(&self.rng, &mut order);
        let mut sub_batch = Vec::with_capacity(self.sub_batch_len);
        for class in order {
            if sub_batch.len() >= self.sub_batch_len {
                break;
            }
            let instances = &classes[class];
            let take = match self.samples_per_class {
                SamplesPerClass::All => instances.len(),
                SamplesPerClass::Count(n) => n,
            };
            if sub_batch.len() + take > self.sub_batch_len {
                continue;
            }
            sub_batch.extend(safe_random_choice(&self.rng, instances, take));
        }
        sub_batch
    }
}

impl BatchSampler for HierarchicalSampler {
    fn num_batches(&self) -> usize {
        self.super_tuples.len() * self.batches_per_super_tuple
    }

    /// The items of the last epoch drawn (batches can be short, so epochs can differ).
    fn num_items(&self) -> usize {
        *self.last_items.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sample_batches(&self) -> Vec<Vec<usize>> {
        let mut batches = Vec::with_capacity(self.num_batches());
        for tuple in &self.super_tuples {
            for _ in 0..self.batches_per_super_tuple {
                let mut batch: Vec<usize> = tuple
                    .iter()
                    .flat_map(|&s| self.sub_batch(&self.classes[s]))
                    .collect();
                shuffle(&self.rng, &mut batch);
                batches.push(batch);
            }
        }
        shuffle(&self.rng, &mut batches);
        *self.last_items.lock().unwrap_or_else(|e| e.into_inner()) =
            batches.iter().map(Vec::len).sum();
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn combinations_like_itertools() {
        assert_eq!(
            combinations(4, 2),
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(combinations(3, 3), vec![vec![0, 1, 2]]);
        assert!(combinations(2, 3).is_empty());
    }

    #[test]
    fn samples_per_class_serializes_like_pml() {
        let all: SamplesPerClass = serde_json::from_str("\"all\"").unwrap();
        let four: SamplesPerClass = serde_json::from_str("4").unwrap();
        assert_eq!(
            (all, four),
            (SamplesPerClass::All, SamplesPerClass::Count(4))
        );
        assert_eq!(
            serde_json::to_string(&SamplesPerClass::All).unwrap(),
            "\"all\""
        );
    }

    #[test]
    fn pml_checks_name_the_argument() {
        let labels: Vec<Vec<i64>> = (0..12).map(|i| vec![i / 2, i / 4]).collect();
        let err = |c: HierarchicalSamplerConfig| c.try_init(&labels).unwrap_err().to_string();
        assert!(
            err(HierarchicalSamplerConfig::new(9, SamplesPerClass::Count(1)))
                .starts_with("invalid value for `super_classes_per_batch`: 2 (must be positive and divide batch_size (9))")
        );
        assert!(
            err(HierarchicalSamplerConfig::new(8, SamplesPerClass::Count(3)))
                .starts_with("invalid value for `samples_per_class`: 3")
        );
        assert_eq!(
            err(HierarchicalSamplerConfig::new(8, SamplesPerClass::Count(2))
                .with_super_classes_per_batch(4)),
            "invalid value for `super_classes_per_batch`: 4 (the labels have only 3 super classes)"
        );
        assert!(
            err(HierarchicalSamplerConfig::new(8, SamplesPerClass::All).with_outer_label(2))
                .starts_with("invalid value for `outer_label`: 2")
        );
    }

    #[test]
    fn all_samples_of_a_class_when_they_fit() {
        // Super 0: classes 0 (3 samples) and 1 (2 samples); super 1: class 2 (4 samples).
        let labels: Vec<Vec<i64>> = [0, 0, 0, 1, 1, 2, 2, 2, 2]
            .iter()
            .map(|&c| vec![c, i64::from(c == 2)])
            .collect();
        let sampler = HierarchicalSamplerConfig::new(8, SamplesPerClass::All)
            .with_batches_per_super_tuple(3)
            .init(&labels);
        for batch in sampler.sample_batches() {
            let set: HashSet<usize> = batch.iter().copied().collect();
            assert_eq!(set.len(), batch.len());
            // Super 1 contributes class 2 whole; super 0 one whole class (3 + 2 > 4).
            assert!(set.is_superset(&HashSet::from([5, 6, 7, 8])));
            assert!(batch.len() == 7 || batch.len() == 6, "{batch:?}");
        }
        assert!([18, 19, 20, 21].contains(&sampler.num_items()));
    }

    proptest! {
        #[test]
        fn batches_mix_the_super_classes_of_one_tuple(
            classes_per_super in proptest::collection::vec(1usize..5, 2..5),
            samples in 1usize..6,
            per_class in 1usize..4,
            classes_in_sub_batch in 1usize..4,
            seed in any::<u64>(),
        ) {
            let mut labels = Vec::new();
            for (s, &n) in classes_per_super.iter().enumerate() {
                for c in 0..n {
                    for _ in 0..samples {
                        labels.push(vec![(10 * s + c) as i64, s as i64]);
                    }
                }
            }
            let batch_size = 2 * per_class * classes_in_sub_batch;
            let config = HierarchicalSamplerConfig::new(batch_size, SamplesPerClass::Count(per_class))
                .with_seed(seed);
            let sampler = config.init(&labels);
            let batches = sampler.sample_batches();
            let supers = classes_per_super.len();
            prop_assert_eq!(batches.len(), supers * (supers - 1) / 2 * 4);
            prop_assert_eq!(batches.len(), sampler.num_batches());
            prop_assert_eq!(sampler.num_items(), batches.iter().map(Vec::len).sum::<usize>());
            for batch in &batches {
                let mut per_super: HashMap<i64, usize> = HashMap::new();
                let mut per_class_count: HashMap<i64, usize> = HashMap::new();
                for &i in batch {
                    prop_assert!(i < labels.len());
                    *per_super.entry(labels[i][1]).or_default() += 1;
                    *per_class_count.entry(labels[i][0]).or_default() += 1;
                }
                prop_assert_eq!(per_super.len(), 2);
                for (s, n) in per_super {
                    let full = (classes_per_super[s as usize] * per_class).min(batch_size / 2);
                    prop_assert_eq!(n, full);
                }
                prop_assert!(per_class_count.values().all(|&n| n == per_class));
            }
            prop_assert_eq!(config.init(&labels).sample_batches(), batches);
        }
    }
}
