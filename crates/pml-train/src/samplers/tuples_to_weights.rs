//! PML's `TuplesToWeightsSampler`.

use std::marker::PhantomData;
use std::sync::Mutex;

use burn::config::Config;
use burn::tensor::{Tensor, backend::Backend};
use pml_core::tensor::{int_tensor, int_vec};
use pml_core::{IndicesTuple, Miner, PmlError, rng::SeededRng};

use super::common::safe_random_choice;
use super::sampler::Sampler;

/// Configuration of [`TuplesToWeightsSampler`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct TuplesToWeightsSamplerConfig {
    /// Items embedded and mined per epoch (random, without replacement when the dataset is
    /// larger); the whole dataset when `None`. Also the number of indices an epoch yields.
    pub subset_size: Option<usize>,
    /// Items per call of the embedding function (PML's tester `batch_size`).
    #[config(default = 32)]
    pub batch_size: usize,
    /// Seed of the sampler's generator (PML draws from numpy's and torch's global generators).
    #[config(default = 0)]
    pub seed: u64,
}

impl TuplesToWeightsSamplerConfig {
    /// Builds the sampler for a dataset whose item `i` has label `labels[i]`. `embed` maps dataset
    /// indices (`[k]`, at most `batch_size`) to their embeddings `[k, d]` with the current model;
    /// `miner` mines the embedded subset.
    ///
    /// # Errors
    /// [`PmlError::InvalidArgument`] when `labels` is empty, or `subset_size` or `batch_size`
    /// is 0.
    pub fn try_init<B, E, M>(
        &self,
        labels: &[i64],
        embed: E,
        miner: M,
    ) -> Result<TuplesToWeightsSampler<B, E, M>, PmlError>
    where
        B: Backend,
        E: Fn(&[usize]) -> Tensor<B, 2> + Send + Sync,
        M: Miner<B> + Send + Sync,
    {
        if labels.is_empty() {
            return Err(PmlError::invalid_argument(
                "labels",
                "[]",
                "TuplesToWeightsSampler needs at least one labelled item",
            ));
        }
        if self.subset_size == Some(0) {
            return Err(PmlError::invalid_argument(
                "subset_size",
                0,
                "must be positive",
            ));
        }
        if self.batch_size == 0 {
            return Err(PmlError::invalid_argument(
                "batch_size",
                0,
                "must be positive",
            ));
        }
        Ok(TuplesToWeightsSampler {
            labels: labels.to_vec(),
            subset_size: self.subset_size,
            batch_size: self.batch_size,
            embed,
            miner,
            rng: SeededRng::new(self.seed),
            weights: Mutex::new(None),
            backend: PhantomData,
        })
    }

    /// Builds the sampler.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B, E, M>(
        &self,
        labels: &[i64],
        embed: E,
        miner: M,
    ) -> TuplesToWeightsSampler<B, E, M>
    where
        B: Backend,
        E: Fn(&[usize]) -> Tensor<B, 2> + Send + Sync,
        M: Miner<B> + Send + Sync,
    {
        self.try_init(labels, embed, miner)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Samples items in proportion to how often a miner picks them (PML's
/// `TuplesToWeightsSampler`), seeded.
///
/// Each epoch: draw a subset of `subset_size` items (or take all), embed it with the current
/// model through `embed` (in chunks of `batch_size`), mine it with `miner`, weight each item by
/// the number of mined tuples it appears in divided by the largest such count (PML's
/// `convert_to_weights`: every item weighs 1 when nothing is mined; items outside the subset
/// weigh 0), then draw `num_samples` indices with replacement in proportion to the weights.
///
/// The model changes during training, so `embed` should read the current one (for example
/// through an `Arc<RwLock<Model>>` the training loop updates), as PML's sampler holds a
/// reference to the model being trained.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Tensor, TensorData};
/// use pml_miners::MultiSimilarityMinerConfig;
/// use pml_train::samplers::{Sampler, TuplesToWeightsSamplerConfig};
///
/// let labels = [0, 0, 1, 1];
/// let points = [[1.0f32, 0.0], [0.0, 1.0], [0.9, 0.1], [-1.0, 0.0]];
/// let embed = move |indices: &[usize]| {
///     let rows: Vec<f32> = indices.iter().flat_map(|&i| points[i]).collect();
///     Tensor::<NdArray, 2>::from_data(TensorData::new(rows, [indices.len(), 2]), &Default::default())
/// };
/// let sampler = TuplesToWeightsSamplerConfig::new()
///     .init(&labels, embed, MultiSimilarityMinerConfig::new().init());
/// let epoch = sampler.sample_epoch();
/// assert_eq!(epoch.len(), 4);
/// assert!(epoch.iter().all(|&i| i < 4));
/// assert_eq!(sampler.weights().unwrap().len(), 4);
/// ```
pub struct TuplesToWeightsSampler<B, E, M> {
    labels: Vec<i64>,
    subset_size: Option<usize>,
    batch_size: usize,
    embed: E,
    miner: M,
    rng: SeededRng,
    weights: Mutex<Option<Vec<f32>>>,
    backend: PhantomData<fn() -> B>,
}

impl<B, E, M> std::fmt::Debug for TuplesToWeightsSampler<B, E, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TuplesToWeightsSampler")
            .field("items", &self.labels.len())
            .field("subset_size", &self.subset_size)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl<B, E, M> TuplesToWeightsSampler<B, E, M>
where
    B: Backend,
    E: Fn(&[usize]) -> Tensor<B, 2> + Send + Sync,
    M: Miner<B> + Send + Sync,
{
    /// The weight of every dataset item, `[n]`, from the last epoch (PML's `weights`); `None`
    /// before the first.
    pub fn weights(&self) -> Option<Vec<f32>> {
        self.weights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Weights of the subset items from the mined tuples (PML's `convert_to_weights`).
    fn subset_weights(&self, subset: &[usize]) -> Vec<f32> {
        let embeddings = Tensor::cat(
            subset
                .chunks(self.batch_size)
                .map(|chunk| (self.embed)(chunk))
                .collect(),
            0,
        );
        let labels: Vec<i64> = subset.iter().map(|&i| self.labels[i]).collect();
        let labels = int_tensor(&labels, &embeddings.device());
        let tuple = self.miner.mine(embeddings, labels, None);
        let parts = match tuple {
            IndicesTuple::Pairs { a1, p, a2, n } => vec![a1, p, a2, n],
            IndicesTuple::Triplets { a, p, n } => vec![a, p, n],
        };
        let mut counts = vec![0usize; subset.len()];
        for part in parts {
            for position in int_vec(part) {
                counts[position as usize] += 1;
            }
        }
        let max = counts.iter().copied().max().unwrap_or(0);
        if max == 0 {
            return vec![1.0; subset.len()];
        }
        counts.iter().map(|&c| c as f32 / max as f32).collect()
    }
}

impl<B, E, M> Sampler for TuplesToWeightsSampler<B, E, M>
where
    B: Backend,
    E: Fn(&[usize]) -> Tensor<B, 2> + Send + Sync,
    M: Miner<B> + Send + Sync,
{
    fn num_samples(&self) -> usize {
        self.subset_size.unwrap_or(self.labels.len())
    }

    fn sample_epoch(&self) -> Vec<usize> {
        let all: Vec<usize> = (0..self.labels.len()).collect();
        let subset = match self.subset_size {
            Some(size) => safe_random_choice(&self.rng, &all, size),
            None => all,
        };
        let mut weights = vec![0.0f32; self.labels.len()];
        for (&i, w) in subset.iter().zip(self.subset_weights(&subset)) {
            weights[i] = w;
        }
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total = 0.0f64;
        for &w in &weights {
            total += f64::from(w);
            cumulative.push(total);
        }
        let drawn = (0..self.num_samples())
            .map(|_| {
                let target = self.rng.uniform() * total;
                cumulative
                    .partition_point(|&c| c <= target)
                    .min(weights.len() - 1)
            })
            .collect();
        *self.weights.lock().unwrap_or_else(|e| e.into_inner()) = Some(weights);
        drawn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use burn_ndarray::NdArray;
    use pml_miners::{BatchHardMinerConfig, MultiSimilarityMinerConfig};
    use proptest::prelude::*;

    type B = NdArray;

    fn embedder(points: Vec<[f32; 2]>) -> impl Fn(&[usize]) -> Tensor<B, 2> + Send + Sync {
        move |indices: &[usize]| {
            let rows: Vec<f32> = indices.iter().flat_map(|&i| points[i]).collect();
            Tensor::from_data(
                TensorData::new(rows, [indices.len(), 2]),
                &Default::default(),
            )
        }
    }

    #[test]
    fn weights_follow_the_mined_counts() {
        // Batch-hard: every anchor gives one triplet; counts of appearances decide the weights.
        let labels = [0, 0, 1, 1];
        let points = vec![[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.0]];
        let sampler = TuplesToWeightsSamplerConfig::new().with_batch_size(3).init(
            &labels,
            embedder(points.clone()),
            BatchHardMinerConfig::new().init(),
        );
        assert_eq!(sampler.weights(), None);
        let epoch = sampler.sample_epoch();
        assert_eq!(epoch.len(), 4);
        let weights = sampler.weights().unwrap();
        // Distances on the unit circle: hardest positive/negative for each anchor.
        // a0: p1, n2; a1: p0, n2; a2: p3, n0; a3: p2, n1 => counts 0:3, 1:3, 2:4, 3:2.
        assert_eq!(weights, vec![0.75, 0.75, 1.0, 0.5]);
    }

    #[test]
    fn nothing_mined_means_uniform_weights_and_subsets_weigh_the_rest_zero() {
        let labels = [0, 1, 2, 3, 4, 5];
        let points = (0..6).map(|i| [i as f32, 1.0]).collect();
        let sampler = TuplesToWeightsSamplerConfig::new()
            .with_subset_size(Some(2))
            .with_seed(3)
            .init(
                &labels,
                embedder(points),
                MultiSimilarityMinerConfig::new().init(),
            );
        let epoch = sampler.sample_epoch();
        assert_eq!(epoch.len(), 2);
        let weights = sampler.weights().unwrap();
        assert_eq!(weights.iter().filter(|&&w| w == 1.0).count(), 2);
        assert_eq!(weights.iter().filter(|&&w| w == 0.0).count(), 4);
        assert!(epoch.iter().all(|&i| weights[i] == 1.0));
        let e = TuplesToWeightsSamplerConfig::new()
            .with_subset_size(Some(0))
            .try_init(
                &labels,
                embedder(vec![]),
                MultiSimilarityMinerConfig::new().init(),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid value for `subset_size`: 0")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn draws_only_weighted_items_deterministically(
            labels in proptest::collection::vec(0i64..3, 2..20),
            subset in 1usize..25,
            seed in any::<u64>(),
        ) {
            let points: Vec<[f32; 2]> = (0..labels.len())
                .map(|i| [(i as f32 * 0.7).cos(), (i as f32 * 1.3).sin()])
                .collect();
            let config = TuplesToWeightsSamplerConfig::new()
                .with_subset_size(Some(subset))
                .with_batch_size(4)
                .with_seed(seed);
            let make = || config.init(&labels, embedder(points.clone()), BatchHardMinerConfig::new().init());
            let sampler = make();
            let epoch = sampler.sample_epoch();
            prop_assert_eq!(epoch.len(), subset);
            let weights = sampler.weights().unwrap();
            prop_assert!(epoch.iter().all(|&i| i < labels.len() && weights[i] > 0.0));
            prop_assert!(weights.iter().all(|w| (0.0..=1.0).contains(w)));
            if subset <= labels.len() {
                // Without repeats in the subset, the most mined item weighs 1 (with repeats,
                // the last copy's weight wins, as in PML).
                prop_assert!(weights.contains(&1.0));
            }
            prop_assert_eq!(make().sample_epoch(), epoch);
        }
    }
}
