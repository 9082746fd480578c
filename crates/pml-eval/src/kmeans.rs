//! k-means clustering on the Burn device (Lloyd's algorithm, k-means++ seeding, restarts).

use burn::{
    config::Config,
    tensor::{IndexingUpdateOp, Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{
    PmlError,
    rng::SeededRng,
    tensor::{float_vec, int_tensor, int_vec},
};

/// Configuration of [`KMeans`]. Defaults follow scikit-learn's `KMeans` (`max_iter = 300`,
/// `tol = 1e-4`) with 10 restarts.
#[derive(Config, Debug)]
pub struct KMeansConfig {
    /// Independent runs (k-means++ seeding + Lloyd iterations); the one with the lowest inertia
    /// wins.
    #[config(default = 10)]
    pub n_init: usize,
    /// Lloyd iterations per run at most.
    #[config(default = 300)]
    pub max_iter: usize,
    /// Convergence: a run stops when the squared shift of the centroids is at most `tol` times
    /// the mean variance of the features (scikit-learn's rule).
    #[config(default = 1e-4)]
    pub tol: f64,
    /// Seed of the k-means++ draws.
    #[config(default = 0)]
    pub seed: u64,
    /// Rows per block when assigning points to centroids (memory: `batch_size × k` floats).
    #[config(default = 4096)]
    pub batch_size: usize,
}

impl KMeansConfig {
    /// Builds the clusterer, or an error naming a zero `n_init`, `max_iter` or `batch_size`, or
    /// a negative `tol`.
    pub fn try_init(&self) -> Result<KMeans, PmlError> {
        for (name, v) in [
            ("n_init", self.n_init),
            ("max_iter", self.max_iter),
            ("batch_size", self.batch_size),
        ] {
            if v == 0 {
                return Err(PmlError::invalid_argument(name, v, "must be positive"));
            }
        }
        if self.tol.is_nan() || self.tol < 0.0 {
            return Err(PmlError::invalid_argument(
                "tol",
                self.tol,
                "must be non-negative",
            ));
        }
        Ok(KMeans {
            config: self.clone(),
        })
    }

    /// Builds the clusterer.
    ///
    /// # Panics
    /// On an invalid value (see [`try_init`](Self::try_init)).
    pub fn init(&self) -> KMeans {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The result of [`KMeans::fit`].
#[derive(Clone, Debug)]
pub struct KMeansResult<B: Backend> {
    /// `[k, d]` centroids.
    pub centroids: Tensor<B, 2>,
    /// The cluster of each row, in `0..k`.
    pub labels: Vec<i64>,
    /// Sum of squared distances of the rows to their centroids.
    pub inertia: f64,
    /// Lloyd iterations of the winning run.
    pub n_iter: usize,
}

/// k-means on the device: k-means++ seeding (scikit-learn's greedy variant, `2 + ⌊ln k⌋`
/// candidates per centre), Lloyd iterations with blocked assignment (one matrix product per
/// block, `‖x‖² + ‖c‖² − 2 x·cᵀ`) and centroid sums by scatter-add, several restarts keeping the
/// lowest inertia `Σ_i ‖x_i − c_{l(i)}‖²`. An empty cluster keeps its previous centroid.
///
/// Replaces PML's `FaissKMeans` (faiss's k-means has one run and random seeding).
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::KMeansConfig;
///
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats(
///     [[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]], &device);
/// let r = KMeansConfig::new().init().fit(x, 2).unwrap();
/// assert_eq!(r.labels[0], r.labels[1]);
/// assert_ne!(r.labels[0], r.labels[2]);
/// assert!(r.inertia < 0.011);
/// ```
#[derive(Clone, Debug)]
pub struct KMeans {
    config: KMeansConfig,
}

impl KMeans {
    /// Clusters the rows of `x` into `n_clusters` groups.
    ///
    /// # Shapes
    /// - `x`: `[n, d]`
    ///
    /// # Errors
    /// When `n_clusters` is 0 or larger than `n`.
    pub fn fit<B: Backend>(
        &self,
        x: Tensor<B, 2>,
        n_clusters: usize,
    ) -> Result<KMeansResult<B>, PmlError> {
        let [n, _] = x.dims();
        if n_clusters == 0 || n_clusters > n {
            return Err(PmlError::invalid_argument(
                "n_clusters",
                n_clusters,
                format!("must be in 1..={n} (the number of rows)"),
            ));
        }
        let x_sq = x.clone().powi_scalar(2).sum_dim(1); // [n, 1]
        let mean_var = {
            let mean = x.clone().mean_dim(0);
            let var = (x.clone() - mean).powi_scalar(2).mean_dim(0);
            float_vec(var.mean())[0]
        };
        let tol = self.config.tol * mean_var;
        let rng = SeededRng::new(self.config.seed);
        let mut best: Option<KMeansResult<B>> = None;
        for _ in 0..self.config.n_init {
            let seeds = self.seed_plus_plus(&x, &x_sq, n_clusters, &rng);
            let run = self.lloyd(&x, &x_sq, seeds, tol);
            if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
                best = Some(run);
            }
        }
        Ok(best.expect("n_init >= 1"))
    }

    /// Squared distances `[rows, k]` of `x` rows to `c`.
    fn sq_dist<B: Backend>(x: Tensor<B, 2>, x_sq: Tensor<B, 2>, c: Tensor<B, 2>) -> Tensor<B, 2> {
        let k = c.dims()[0];
        let c_sq = c.clone().powi_scalar(2).sum_dim(1).reshape([1, k]);
        (x.matmul(c.transpose()).mul_scalar(-2.0) + x_sq + c_sq).clamp_min(0.0)
    }

    /// Nearest centroid and its squared distance for every row, in blocks of rows.
    fn assign<B: Backend>(
        &self,
        x: &Tensor<B, 2>,
        x_sq: &Tensor<B, 2>,
        c: &Tensor<B, 2>,
    ) -> (Tensor<B, 1, Int>, Tensor<B, 1>) {
        let [n, d] = x.dims();
        let bs = self.config.batch_size;
        let mut labels = Vec::new();
        let mut dists = Vec::new();
        for s in (0..n).step_by(bs) {
            let e = (s + bs).min(n);
            let dist = Self::sq_dist(
                x.clone().slice([s..e, 0..d]),
                x_sq.clone().slice([s..e, 0..1]),
                c.clone(),
            );
            let (min, arg) = dist.min_dim_with_indices(1);
            dists.push(min.reshape([e - s]));
            labels.push(arg.reshape([e - s]));
        }
        (Tensor::cat(labels, 0), Tensor::cat(dists, 0))
    }

    /// Greedy k-means++ (scikit-learn's `_kmeans_plusplus`): each new centre is the best of
    /// `2 + ⌊ln k⌋` candidates drawn with probability proportional to the squared distance to
    /// the closest centre so far.
    fn seed_plus_plus<B: Backend>(
        &self,
        x: &Tensor<B, 2>,
        x_sq: &Tensor<B, 2>,
        k: usize,
        rng: &SeededRng,
    ) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let device = x.device();
        let trials = 2 + (k as f64).ln().floor() as usize;
        let first = rng.below(n);
        let mut chosen = vec![first as i64];
        let row = |i: usize| x.clone().slice([i..i + 1, 0..d]);
        let mut closest = Self::sq_dist(x.clone(), x_sq.clone(), row(first)).reshape([n]);
        for _ in 1..k {
            let cumsum = closest.clone().cumsum(0);
            let total = float_vec(cumsum.clone().narrow(0, n - 1, 1))[0];
            let candidates: Vec<i64> = if total > 0.0 && total.is_finite() {
                // searchsorted on the device: the number of cumulative sums below each target.
                let targets: Vec<f32> = (0..trials)
                    .map(|_| (rng.uniform() * total) as f32)
                    .collect();
                let t = Tensor::<B, 1>::from_data(
                    TensorData::new(targets, [trials]),
                    (&device, x.dtype()),
                )
                .reshape([trials, 1]);
                let below = cumsum
                    .clone()
                    .reshape([1, n])
                    .expand([trials, n])
                    .lower(t.expand([trials, n]))
                    .int()
                    .sum_dim(1)
                    .reshape([trials]);
                int_vec(below.clamp_max(n as i64 - 1))
            } else {
                // Every point sits on a centre: any point will do.
                (0..trials).map(|_| rng.below(n) as i64).collect()
            };
            let cand = x.clone().select(0, int_tensor(&candidates, &device));
            let dist = Self::sq_dist(x.clone(), x_sq.clone(), cand).transpose(); // [trials, n]
            let new_closest = dist.min_pair(closest.clone().reshape([1, n]).expand([trials, n]));
            let potential = new_closest.clone().sum_dim(1).reshape([trials]);
            let best = int_vec(potential.argmin(0))[0] as usize;
            chosen.push(candidates[best]);
            closest = new_closest.slice([best..best + 1, 0..n]).reshape([n]);
        }
        x.clone().select(0, int_tensor(&chosen, &device))
    }

    fn lloyd<B: Backend>(
        &self,
        x: &Tensor<B, 2>,
        x_sq: &Tensor<B, 2>,
        mut centroids: Tensor<B, 2>,
        tol: f64,
    ) -> KMeansResult<B> {
        let [n, d] = x.dims();
        let k = centroids.dims()[0];
        let device = x.device();
        let ones = Tensor::<B, 1>::ones([n], (&device, x.dtype()));
        let mut n_iter = 0;
        for it in 0..self.config.max_iter {
            n_iter = it + 1;
            let (labels, _) = self.assign(x, x_sq, &centroids);
            let sums = Tensor::<B, 2>::zeros([k, d], (&device, x.dtype())).select_assign(
                0,
                labels.clone(),
                x.clone(),
                IndexingUpdateOp::Add,
            );
            let counts = Tensor::<B, 1>::zeros([k], (&device, x.dtype()))
                .select_assign(0, labels, ones.clone(), IndexingUpdateOp::Add)
                .reshape([k, 1]);
            let empty = counts.clone().equal_elem(0.0).expand([k, d]);
            let updated = (sums / counts.clamp_min(1.0)).mask_where(empty, centroids.clone());
            let shift = float_vec((updated.clone() - centroids).powi_scalar(2).sum())[0];
            centroids = updated;
            if shift <= tol {
                break;
            }
        }
        let (labels, dists) = self.assign(x, x_sq, &centroids);
        KMeansResult {
            centroids,
            labels: int_vec(labels),
            inertia: float_vec(dists.sum())[0],
            n_iter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn recovers_separated_blobs() {
        let device = Default::default();
        let rng = SeededRng::new(3);
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for i in 0..80 {
            let c = centres[i % 4];
            rows.push(c[0] + rng.uniform() as f32);
            rows.push(c[1] + rng.uniform() as f32);
            truth.push((i % 4) as i64);
        }
        let x = Tensor::<B, 1>::from_floats(rows.as_slice(), &device).reshape([80, 2]);
        let r = KMeansConfig::new().with_n_init(3).init().fit(x, 4).unwrap();
        // Same partition up to renaming.
        for i in 0..80 {
            for j in 0..80 {
                assert_eq!(truth[i] == truth[j], r.labels[i] == r.labels[j]);
            }
        }
        assert!(r.inertia < 80.0 * 0.5);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let device = Default::default();
        let x = Tensor::<B, 2>::zeros([3, 2], &device);
        assert!(KMeansConfig::new().init().fit(x.clone(), 4).is_err());
        assert!(KMeansConfig::new().init().fit(x.clone(), 0).is_err());
        assert!(KMeansConfig::new().with_n_init(0).try_init().is_err());
        // All points equal: one cluster each is still a valid answer.
        let r = KMeansConfig::new().init().fit(x, 3).unwrap();
        assert_eq!(r.inertia, 0.0);
    }
}
