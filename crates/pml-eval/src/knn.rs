//! Exact k-nearest-neighbour search on the Burn device, in bounded memory.

use burn::{
    config::Config,
    tensor::{DType, Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{
    PmlError,
    math::normalize_rows,
    tensor::{float_vec, int_vec},
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;

/// How [`Knn`] ranks the references.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnnMetric {
    /// Squared Euclidean distance `‖q − r‖²`, smallest first (faiss's `IndexFlatL2`, PML's
    /// default `FaissKNN`). The returned distances are squared, as faiss's.
    #[default]
    L2,
    /// Inner product `q · r`, largest first (faiss's `IndexFlatIP`).
    InnerProduct,
    /// Cosine similarity: the inner product of L2-normalized rows, largest first.
    Cosine,
}

impl KnnMetric {
    /// `true` when larger values are closer (similarities).
    pub fn is_similarity(self) -> bool {
        !matches!(self, Self::L2)
    }
}

/// Where the top-k of each block is selected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopKSelection {
    /// [`Host`](Self::Host) for now: the device path has not been validated on a GPU backend
    /// yet.
    #[default]
    Auto,
    /// Burn's `argtopk` on the device, per reference block, merged with the running top-k; only
    /// the final `[query_batch_size, k]` results are read back. Needs a backend that implements
    /// `argtopk` (the CubeCL ones: WGPU, CUDA, ROCm; ndarray and flex do not), and keep `k`
    /// small (CubeCL unrolls the top-k over `k`).
    Device,
    /// Each `[query_batch_size, reference_batch_size]` block of inner products is read back and
    /// the top-k is selected on all CPU threads (on CPU backends the "device" is the host, and
    /// Burn's generic top-k would sort whole rows instead).
    Host,
}

/// Configuration of the exact kNN search ([`Knn`]).
///
/// Peak memory is one `[query_batch_size, reference_batch_size]` block of distances plus the
/// `[n, k]` result, whatever the number of references.
#[derive(Config, Debug)]
pub struct KnnConfig {
    /// How references are ranked.
    #[config(default = "KnnMetric::L2")]
    pub metric: KnnMetric,
    /// Query rows per block.
    #[config(default = 1024)]
    pub query_batch_size: usize,
    /// Reference rows per block.
    #[config(default = 4096)]
    pub reference_batch_size: usize,
    /// Where the top-k of a block is selected.
    #[config(default = "TopKSelection::Auto")]
    pub selection: TopKSelection,
    /// Show a progress bar (kdam, on stderr) when the search has at least 8 blocks.
    #[config(default = true)]
    pub progress: bool,
}

impl KnnConfig {
    /// Checks the block sizes.
    pub fn validate(&self) -> Result<(), PmlError> {
        if self.query_batch_size == 0 {
            return Err(PmlError::invalid_argument(
                "query_batch_size",
                0,
                "must be positive",
            ));
        }
        if self.reference_batch_size == 0 {
            return Err(PmlError::invalid_argument(
                "reference_batch_size",
                0,
                "must be positive",
            ));
        }
        Ok(())
    }

    /// Builds the search, or an error naming a bad block size.
    pub fn try_init(&self) -> Result<Knn, PmlError> {
        self.validate()?;
        Ok(Knn {
            config: self.clone(),
        })
    }

    /// Builds the search.
    ///
    /// # Panics
    /// If a block size is zero.
    pub fn init(&self) -> Knn {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The `k` nearest references of each query, best first, on the host.
///
/// Ties are resolved by reference index (the smaller index first), as faiss's flat indexes do.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbors {
    /// Number of queries.
    pub n: usize,
    /// Neighbours per query.
    pub k: usize,
    /// `[n, k]` row-major: squared L2 distances, or similarities (see [`KnnMetric`]).
    pub distances: Vec<f32>,
    /// `[n, k]` row-major reference indices.
    pub indices: Vec<usize>,
}

impl Neighbors {
    /// The neighbour indices of query `i`.
    pub fn indices_of(&self, i: usize) -> &[usize] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// The neighbour distances (or similarities) of query `i`.
    pub fn distances_of(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }

    /// PML's rule for a reference set that starts with the queries (`ref_includes_query`):
    /// from each row remove the query's own index `i`, or the last column when `i` is not among
    /// the neighbours. The result has `k − 1` columns.
    pub fn without_self(&self) -> Neighbors {
        if self.k == 0 {
            return self.clone();
        }
        let k = self.k - 1;
        let mut distances = Vec::with_capacity(self.n * k);
        let mut indices = Vec::with_capacity(self.n * k);
        for i in 0..self.n {
            let row = self.indices_of(i);
            let drop = row.iter().position(|&j| j == i).unwrap_or(self.k - 1);
            for (c, (&j, &d)) in row.iter().zip(self.distances_of(i)).enumerate() {
                if c != drop {
                    indices.push(j);
                    distances.push(d);
                }
            }
        }
        Neighbors {
            n: self.n,
            k,
            distances,
            indices,
        }
    }

    /// The results as device tensors: distances `[n, k]` and indices `[n, k]`.
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2, Int>) {
        let d = Tensor::<B, 1>::from_floats(self.distances.as_slice(), device)
            .reshape([self.n, self.k]);
        let idx: Vec<i64> = self.indices.iter().map(|&i| i as i64).collect();
        let i = pml_core::tensor::int_tensor::<B>(&idx, device).reshape([self.n, self.k]);
        (d, i)
    }
}

/// Exact k-nearest-neighbour search: blocks of queries times blocks of references (one matrix
/// product each) with a top-k per block merged into a running top-k, so that memory stays
/// bounded by the block sizes (never an `n × m` matrix). Replaces PML's `FaissKNN` (flat index).
///
/// For [`KnnMetric::L2`] the block is `‖q‖² + ‖r‖² − 2 q·rᵀ`, clamped at zero.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::KnnConfig;
///
/// let device = Default::default();
/// let reference = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]], &device);
/// let query = Tensor::<NdArray, 2>::from_floats([[0.9, 0.0]], &device);
/// let nn = KnnConfig::new().init().search(query, reference, 2).unwrap();
/// assert_eq!(nn.indices_of(0), &[1, 0]);
/// assert!((nn.distances_of(0)[0] - 0.01).abs() < 1e-5);
/// ```
#[derive(Clone, Debug)]
pub struct Knn {
    config: KnnConfig,
}

impl Knn {
    /// The configuration.
    pub fn config(&self) -> &KnnConfig {
        &self.config
    }

    /// The `min(k, m)` nearest references of every query.
    ///
    /// # Shapes
    /// - `query`: `[n, d]`, `reference`: `[m, d]`
    /// - result: `n × min(k, m)` neighbours
    ///
    /// # Errors
    /// When the widths of `query` and `reference` differ.
    pub fn search<B: Backend>(
        &self,
        query: Tensor<B, 2>,
        reference: Tensor<B, 2>,
        k: usize,
    ) -> Result<Neighbors, PmlError> {
        let ([n, d], [m, dr]) = (query.dims(), reference.dims());
        if d != dr {
            return Err(PmlError::invalid_input(
                "query",
                format!("query has width {d} but the reference has width {dr}"),
            ));
        }
        let k = k.min(m);
        if n == 0 || k == 0 {
            return Ok(Neighbors {
                n,
                k: 0,
                distances: Vec::new(),
                indices: Vec::new(),
            });
        }
        let (query, reference) = match self.config.metric {
            KnnMetric::Cosine => (normalize_rows(query, 2.0), normalize_rows(reference, 2.0)),
            _ => (query, reference),
        };
        let on_device = self.config.selection == TopKSelection::Device;
        if !on_device {
            check_rows("reference", m)?;
        }
        let qb = self.config.query_batch_size.max(1);
        let rb = self.config.reference_batch_size.max(1);
        let ref_blocks: Vec<RefBlock<B>> = if on_device {
            (0..m)
                .step_by(rb)
                .map(|s| {
                    let e = (s + rb).min(m);
                    let r = reference.clone().slice([s..e, 0..d]);
                    let sq = match self.config.metric {
                        KnnMetric::L2 => {
                            Some(r.clone().powi_scalar(2).sum_dim(1).reshape([1, e - s]))
                        }
                        _ => None,
                    };
                    RefBlock {
                        start: s,
                        rows_t: r.transpose(),
                        sq,
                        sq_host: None,
                    }
                })
                .collect()
        } else {
            self.host_blocks(&reference, rb)
        };
        let n_blocks = n.div_ceil(qb) * ref_blocks.len();
        let mut progress = Progress::new("kNN", n_blocks, self.config.progress && n_blocks >= 8);
        let mut out = Neighbors {
            n,
            k,
            distances: Vec::with_capacity(n * k),
            indices: Vec::with_capacity(n * k),
        };
        for qs in (0..n).step_by(qb) {
            let qe = (qs + qb).min(n);
            let q = query.clone().slice([qs..qe, 0..d]);
            let q_sq = match self.config.metric {
                KnnMetric::L2 => Some(q.clone().powi_scalar(2).sum_dim(1)),
                _ => None,
            };
            let rows = qe - qs;
            if on_device {
                let (keys, idx) =
                    self.device_block(&q, q_sq.as_ref(), &ref_blocks, k, &mut progress);
                let keys = float_vec(keys);
                let idx = int_vec(idx.reshape([rows * k]));
                for r in 0..rows {
                    let mut row: Vec<(f32, usize)> = (0..k)
                        .map(|c| (canonical(-keys[r * k + c] as f32), idx[r * k + c] as usize))
                        .collect();
                    row.sort_unstable_by(cmp_candidates);
                    self.push_row(&mut out, row);
                }
            } else {
                let mut store = TopKStore::new(rows, k);
                let mut heaps = store.rows();
                let q_sq = q_sq.map(|t| host_f32(t.into_data()));
                for block in &ref_blocks {
                    let dot = q.clone().matmul(block.rows_t.clone());
                    let width = dot.dims()[1];
                    let dot = host_f32(dot.into_data());
                    let l2 = q_sq.as_deref().zip(block.sq_host.as_deref());
                    select_rows(&mut heaps, &dot, width, block.start, l2);
                    progress.tick(1);
                }
                for h in heaps {
                    self.push_row(&mut out, h.finish());
                }
            }
        }
        Ok(out)
    }

    /// The `min(k, n)` nearest rows of `x` for every row of `x` (each row is among its own
    /// neighbours): the same result as `search(x.clone(), x, k)`, but each product `xᵢ · xⱼ` is
    /// computed once. The rows are cut into tiles of `query_batch_size`; tile `(I, J)` with
    /// `J ≥ I` is one matrix product whose rows feed the top-k of tile `I`'s rows and whose
    /// columns feed those of tile `J`, so the search costs about half the matrix-product work
    /// of [`search`](Self::search). Used by [`AccuracyCalculator`](crate::AccuracyCalculator)
    /// when the query is its own reference.
    ///
    /// With [`TopKSelection::Device`] this is [`search`](Self::search).
    ///
    /// # Shapes
    /// - `x`: `[n, d]`
    /// - result: `n × min(k, n)` neighbours
    ///
    /// Peak memory: two `[query_batch_size, query_batch_size]` blocks and the running top-k of
    /// every row (`n × 2k` candidates).
    pub fn search_self<B: Backend>(
        &self,
        x: Tensor<B, 2>,
        k: usize,
    ) -> Result<Neighbors, PmlError> {
        if self.config.selection == TopKSelection::Device {
            return self.search(x.clone(), x, k);
        }
        let [n, d] = x.dims();
        check_rows("x", n)?;
        let k = k.min(n);
        if n == 0 || k == 0 {
            return Ok(Neighbors {
                n,
                k: 0,
                distances: Vec::new(),
                indices: Vec::new(),
            });
        }
        let x = match self.config.metric {
            KnnMetric::Cosine => normalize_rows(x, 2.0),
            _ => x,
        };
        let b = self.config.query_batch_size.max(1);
        let tiles = self.host_blocks(&x, b);
        let n_tiles = tiles.len() * (tiles.len() + 1) / 2;
        let mut progress = Progress::new("kNN", n_tiles, self.config.progress && n_tiles >= 8);
        let mut store = TopKStore::new(n, k);
        let mut heaps = store.rows();
        for (ti, tile) in tiles.iter().enumerate() {
            let rows = tile.rows_t.dims()[1];
            let q = x.clone().slice([tile.start..tile.start + rows, 0..d]);
            for other in &tiles[ti..] {
                let dot = host_f32(q.clone().matmul(other.rows_t.clone()).into_data());
                let width = other.rows_t.dims()[1];
                let (own, theirs) = (tile.sq_host.as_deref(), other.sq_host.as_deref());
                let (before, after) = heaps.split_at_mut(other.start);
                if other.start == tile.start {
                    select_rows(&mut after[..rows], &dot, width, tile.start, own.zip(own));
                } else {
                    let own_heaps = &mut before[tile.start..tile.start + rows];
                    select_rows(own_heaps, &dot, width, other.start, own.zip(theirs));
                    select_columns(&mut after[..width], &dot, rows, tile.start, theirs.zip(own));
                }
                progress.tick(1);
            }
        }
        let mut out = Neighbors {
            n,
            k,
            distances: Vec::with_capacity(n * k),
            indices: Vec::with_capacity(n * k),
        };
        for h in heaps {
            self.push_row(&mut out, h.finish());
        }
        Ok(out)
    }

    /// Contiguous transposed blocks of `rows` rows of `reference`, with their squared norms for
    /// L2, on the host path.
    fn host_blocks<B: Backend>(&self, reference: &Tensor<B, 2>, rows: usize) -> Vec<RefBlock<B>> {
        let [m, d] = reference.dims();
        let device = reference.device();
        (0..m)
            .step_by(rows)
            .map(|s| {
                let e = (s + rows).min(m);
                let r = reference.clone().slice([s..e, 0..d]);
                let sq = match self.config.metric {
                    KnnMetric::L2 => {
                        Some(host_f32(r.clone().powi_scalar(2).sum_dim(1).into_data()))
                    }
                    _ => None,
                };
                // The host path reads every block back anyway: a contiguous copy of the
                // transposed block makes the CPU matrix products about twice as fast.
                let rows_t = r.transpose();
                let dtype = rows_t.dtype();
                RefBlock {
                    start: s,
                    rows_t: Tensor::from_data(rows_t.into_data(), (&device, dtype)),
                    sq: None,
                    sq_host: sq,
                }
            })
            .collect()
    }

    /// The block's ranking keys, smaller = closer: distances, or negated similarities.
    fn block_keys<B: Backend>(
        &self,
        q: &Tensor<B, 2>,
        q_sq: Option<&Tensor<B, 2>>,
        block: &RefBlock<B>,
    ) -> Tensor<B, 2> {
        let dot = q.clone().matmul(block.rows_t.clone());
        match (q_sq, &block.sq) {
            (Some(qs), Some(rs)) => (dot.mul_scalar(-2.0) + qs.clone() + rs.clone()).clamp_min(0.0),
            _ => dot.neg(),
        }
    }

    /// Top-k of one query block on the device: per reference block `argtopk` of `-key`, merged
    /// with the running candidates. Returns `[rows, k]` negated keys and indices.
    fn device_block<B: Backend>(
        &self,
        q: &Tensor<B, 2>,
        q_sq: Option<&Tensor<B, 2>>,
        ref_blocks: &[RefBlock<B>],
        k: usize,
        progress: &mut Progress,
    ) -> (Tensor<B, 2>, Tensor<B, 2, Int>) {
        let mut best: Option<(Tensor<B, 2>, Tensor<B, 2, Int>)> = None;
        for block in ref_blocks {
            let score = self.block_keys(q, q_sq, block).neg();
            let kk = k.min(score.dims()[1]);
            let local = score.clone().argtopk(kk, 1);
            let values = score.gather(1, local.clone());
            let global = local.add_scalar(block.start as i64);
            best = Some(match best {
                None => (values, global),
                Some((bv, bi)) => {
                    let cv = Tensor::cat(vec![bv, values], 1);
                    let ci = Tensor::cat(vec![bi, global], 1);
                    let kk = k.min(cv.dims()[1]);
                    let pick = cv.clone().argtopk(kk, 1);
                    (cv.gather(1, pick.clone()), ci.gather(1, pick))
                }
            });
            progress.tick(1);
        }
        best.expect("at least one reference block")
    }

    fn push_row(&self, out: &mut Neighbors, row: impl IntoIterator<Item = (f32, usize)>) {
        let similarity = self.config.metric.is_similarity();
        for (key, j) in row {
            out.distances
                .push(if similarity { -key + 0.0 } else { key });
            out.indices.push(j);
        }
    }
}

struct RefBlock<B: Backend> {
    start: usize,
    /// `[d, rows]`
    rows_t: Tensor<B, 2>,
    /// `[1, rows]` squared norms for L2 (device path).
    sq: Option<Tensor<B, 2>>,
    /// The squared norms for L2 on the host (host path).
    sq_host: Option<Vec<f32>>,
}

/// The values of a float tensor as `f32`, without a copy when they already are.
fn host_f32(data: TensorData) -> Vec<f32> {
    if data.dtype == DType::F32 {
        data.into_vec::<f32>()
            .expect("f32 tensor data reads as f32")
    } else {
        data.iter::<f32>().collect()
    }
}

/// The L2 key of the host path, in the device path's order of operations:
/// `max(−2 q·r + ‖q‖² + ‖r‖², 0)`.
#[inline]
fn l2_key(dot: f32, q_sq: f32, r_sq: f32) -> f32 {
    (dot * -2.0 + q_sq + r_sq).max(0.0)
}

/// NaN ranks last; `-0.0` equals `0.0`.
fn canonical(x: f32) -> f32 {
    if x.is_nan() { f32::INFINITY } else { x + 0.0 }
}

fn cmp_candidates(a: &(f32, usize), b: &(f32, usize)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// A candidate `(key, index)` packed into one integer whose order is the candidates' order
/// ([`cmp_candidates`]: the key by `f32::total_cmp`, then the index), so that the running top-k
/// compares integers and its buffer holds 8 bytes per candidate instead of 16. Indices must
/// fit in 32 bits ([`check_rows`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate(u64);

impl Candidate {
    #[inline]
    fn new(key: f32, index: usize) -> Self {
        let bits = key.to_bits();
        // `total_cmp`'s order on unsigned integers: negative keys reversed, below the others.
        let ordered = if bits >> 31 == 1 {
            !bits
        } else {
            bits | 1 << 31
        };
        Self(u64::from(ordered) << 32 | index as u64)
    }

    fn key(self) -> f32 {
        let ordered = (self.0 >> 32) as u32;
        f32::from_bits(if ordered >> 31 == 1 {
            ordered & !(1 << 31)
        } else {
            !ordered
        })
    }

    fn index(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }
}

/// Refuses reference sets whose indices do not fit the 32 bits of a [`Candidate`].
fn check_rows(argument: &str, rows: usize) -> Result<(), PmlError> {
    if rows > u32::MAX as usize {
        return Err(PmlError::invalid_input(
            argument,
            format!("{rows} rows, more than the 2^32 - 1 the host search can index"),
        ));
    }
    Ok(())
}

/// The running top-k of one query row: a slice of `2k` candidates (one row of a
/// [`TopKStore`]) whose first `len` are filled, cut back to the best `k` whenever it is full,
/// with the `k`-th best key as admission bound.
struct RowTopK<'a> {
    k: usize,
    buf: &'a mut [Candidate],
    len: usize,
    threshold: f32,
}

/// The candidate buffers of the running top-k of `rows` rows, in one allocation: a buffer per
/// row is `rows` small allocations per search, whose pages an allocator that keeps freed pages
/// (the benches' and examples' jemalloc) does not reuse from one search to the next.
struct TopKStore {
    k: usize,
    candidates: Vec<Candidate>,
}

impl TopKStore {
    fn new(rows: usize, k: usize) -> Self {
        Self {
            k,
            candidates: vec![Candidate(0); rows * 2 * k],
        }
    }

    /// One running top-k per row.
    fn rows(&mut self) -> Vec<RowTopK<'_>> {
        let k = self.k;
        self.candidates
            .chunks_mut(2 * k)
            .map(|buf| RowTopK {
                k,
                buf,
                len: 0,
                threshold: f32::INFINITY,
            })
            .collect()
    }
}

/// Keys are screened against the admission bound this many at a time: one vectorizable pass
/// over the group, and the per-candidate work only when one of them gets in.
const GROUP: usize = 16;

impl RowTopK<'_> {
    /// Keys above this cannot be among the best `k`. Admitting a key equal to it (or any extra
    /// candidate) is harmless: [`finish`](Self::finish) ranks by key, then index.
    #[inline]
    fn bound(&self) -> f32 {
        if self.len < self.k {
            f32::INFINITY
        } else {
            self.threshold
        }
    }

    #[inline]
    fn push(&mut self, key: f32, index: usize) {
        self.buf[self.len] = Candidate::new(key, index);
        self.len += 1;
        if self.len == self.buf.len() {
            self.shrink();
        }
    }

    /// Offers the keys of one row of a block: `keys(c0)` gives the [`GROUP`] keys of
    /// references `start + c0..`, `width` in all (the last group may be cut short).
    #[inline]
    fn offer(&mut self, width: usize, start: usize, keys: impl Fn(usize) -> [f32; GROUP]) {
        for c0 in (0..width).step_by(GROUP) {
            let group = keys(c0);
            let valid = (width - c0).min(GROUP);
            if screen(&group, &[self.bound(); GROUP]) {
                for (c, &key) in group.iter().enumerate().take(valid) {
                    if key <= self.bound() {
                        self.push(key, start + c0 + c);
                    }
                }
            }
        }
        self.settle();
    }

    /// Cuts the buffer back to `k` and updates the bound.
    fn settle(&mut self) {
        if self.len >= self.k {
            self.shrink();
        }
    }

    fn shrink(&mut self) {
        let k = self.k;
        let filled = &mut self.buf[..self.len];
        if self.len > k {
            // The k-th best lands at `k − 1`, the better ones before it: it is the bound.
            filled.select_nth_unstable(k - 1);
            self.len = k;
            self.threshold = filled[k - 1].key();
        } else if self.len == k {
            self.threshold = filled.iter().max().map_or(f32::INFINITY, |c| c.key());
        }
    }

    /// The best `k` (or fewer) candidates, best first, as `(key, index)`.
    fn finish(self) -> impl Iterator<Item = (f32, usize)> {
        let Self { k, buf, len, .. } = self;
        buf[..len].sort_unstable();
        let buf: &[Candidate] = buf;
        buf[..len.min(k)].iter().map(|c| (c.key(), c.index()))
    }
}

/// Whether any of a group of (canonical) keys passes its bound: one branch-free pass that the
/// compiler vectorizes. An infinite bound admits everything, NaN keys included.
#[inline]
fn screen(keys: &[f32; GROUP], bounds: &[f32; GROUP]) -> bool {
    let mut hit = false;
    for (k, b) in keys.iter().zip(bounds) {
        hit |= (*k <= *b) | (*b == f32::INFINITY);
    }
    hit
}

/// The [`GROUP`] keys of `dots[..]` (past the end: `+∞`): squared L2 distances from
/// `q_sq` and `r_sq[..]` when given, otherwise negated inner products.
#[inline]
fn group_keys(dots: &[f32], q_sq: Option<f32>, r_sq: Option<&[f32]>) -> [f32; GROUP] {
    let mut keys = [f32::INFINITY; GROUP];
    let n = dots.len().min(GROUP);
    match (q_sq, r_sq) {
        (Some(q), Some(r)) => {
            for ((key, &dot), &r) in keys[..n].iter_mut().zip(dots).zip(r) {
                *key = canonical(l2_key(dot, q, r));
            }
        }
        _ => {
            for (key, &dot) in keys[..n].iter_mut().zip(dots) {
                *key = canonical(-dot);
            }
        }
    }
    keys
}

/// Runs `work` over `items` split into one contiguous chunk per CPU thread (chunk lengths a
/// multiple of `align`) on rayon's pool (burn-ndarray's); `work` gets the chunk's offset and
/// the chunk. `cost` (block entries) decides whether threads pay off.
fn on_threads<T: Send>(
    items: &mut [T],
    cost: usize,
    align: usize,
    work: impl Fn(usize, &mut [T]) + Sync,
) {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    if threads <= 1 || cost < (1 << 16) {
        work(0, items);
        return;
    }
    let per = (items.len().div_ceil(threads).div_ceil(align) * align).max(1);
    items
        .par_chunks_mut(per)
        .enumerate()
        .for_each(|(ci, chunk)| work(ci * per, chunk));
}

/// Feeds each row of a `[rows, width]` block of inner products into its running top-k
/// (`heaps[r]`; candidates `start..start + width`), on all CPU threads. With
/// `l2 = Some((‖q‖², ‖r‖²))` the keys are squared L2 distances, otherwise negated inner
/// products.
fn select_rows(
    heaps: &mut [RowTopK<'_>],
    dot: &[f32],
    width: usize,
    start: usize,
    l2: Option<(&[f32], &[f32])>,
) {
    let cost = heaps.len() * width;
    on_threads(heaps, cost, 1, |offset, chunk| {
        for (o, h) in chunk.iter_mut().enumerate() {
            let r = offset + o;
            let row = &dot[r * width..(r + 1) * width];
            let q_sq = l2.map(|(q_sq, _)| q_sq[r]);
            h.offer(width, start, |c0| {
                group_keys(&row[c0..], q_sq, l2.map(|(_, r_sq)| &r_sq[c0..]))
            });
        }
    });
}

/// Feeds each column of a `[rows, width]` block into its running top-k (`heaps[c]`;
/// candidates `start..start + rows`): [`select_rows`] of the transposed block, without
/// transposing it. Columns are taken [`GROUP`] at a time, so each row of the block is read as
/// one cache line per group. `l2 = Some((‖column‖², ‖row‖²))`.
fn select_columns(
    heaps: &mut [RowTopK<'_>],
    dot: &[f32],
    rows: usize,
    start: usize,
    l2: Option<(&[f32], &[f32])>,
) {
    let width = heaps.len();
    on_threads(heaps, rows * width, GROUP, |offset, chunk| {
        for (g, group) in chunk.chunks_mut(GROUP).enumerate() {
            let c0 = offset + g * GROUP;
            let cols = group.len();
            let mut bounds = [f32::INFINITY; GROUP];
            for (b, h) in bounds.iter_mut().zip(group.iter()) {
                *b = h.bound();
            }
            for r in 0..rows {
                let line = &dot[r * width + c0..r * width + c0 + cols];
                let keys = match l2 {
                    // Per column: ‖column‖² from `c_sq`, one ‖row‖² for the whole line.
                    Some((c_sq, r_sq)) => {
                        let mut keys = [f32::INFINITY; GROUP];
                        for ((key, &dot), &c) in keys.iter_mut().zip(line).zip(&c_sq[c0..]) {
                            *key = canonical(l2_key(dot, c, r_sq[r]));
                        }
                        keys
                    }
                    None => group_keys(line, None, None),
                };
                if screen(&keys, &bounds) {
                    for ((h, &key), bound) in group.iter_mut().zip(&keys).zip(&mut bounds) {
                        if key <= *bound {
                            h.push(key, start + r);
                            *bound = h.bound();
                        }
                    }
                }
            }
            for h in group.iter_mut() {
                h.settle();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn packed_candidates_keep_the_order_of_key_then_index() {
        let keys = [
            f32::NEG_INFINITY,
            -3.5,
            -f32::MIN_POSITIVE,
            0.0,
            f32::MIN_POSITIVE,
            1.0,
            1.0 + f32::EPSILON,
            3.4e38,
            f32::INFINITY,
        ];
        let mut all = Vec::new();
        for &key in &keys {
            for index in [0, 1, 7, u32::MAX as usize] {
                let c = Candidate::new(key, index);
                assert_eq!((c.key(), c.index()), (key, index));
                all.push((key, index));
            }
        }
        for a in &all {
            for b in &all {
                let packed = Candidate::new(a.0, a.1).cmp(&Candidate::new(b.0, b.1));
                assert_eq!(packed, cmp_candidates(a, b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn ties_go_to_the_smaller_index_and_blocks_merge() {
        let device = Default::default();
        // References 0..6 on a line; query at 2.5: 2 and 3 tie, then 1 and 4 tie.
        let reference =
            Tensor::<B, 2>::from_floats([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]], &device);
        let query = Tensor::<B, 2>::from_floats([[2.5], [0.0]], &device);
        for (qb, rb) in [(1, 1), (1, 4), (16, 2), (16, 16)] {
            let knn = KnnConfig::new()
                .with_query_batch_size(qb)
                .with_reference_batch_size(rb)
                .with_selection(TopKSelection::Host)
                .init();
            let nn = knn.search(query.clone(), reference.clone(), 4).unwrap();
            assert_eq!(nn.indices_of(0), &[2, 3, 1, 4], "blocks {qb}x{rb}");
            assert_eq!(nn.distances_of(0), &[0.25, 0.25, 2.25, 2.25]);
            assert_eq!(nn.indices_of(1), &[0, 1, 2, 3]);
        }
    }

    #[test]
    fn inner_product_and_cosine_rank_largest_first() {
        let device = Default::default();
        let reference = Tensor::<B, 2>::from_floats([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]], &device);
        let query = Tensor::<B, 2>::from_floats([[1.0, 0.1]], &device);
        let ip = KnnConfig::new().with_metric(KnnMetric::InnerProduct).init();
        let nn = ip.search(query.clone(), reference.clone(), 3).unwrap();
        assert_eq!(nn.indices_of(0), &[1, 0, 2]);
        assert!((nn.distances_of(0)[0] - 3.0).abs() < 1e-6);
        let cos = KnnConfig::new().with_metric(KnnMetric::Cosine).init();
        let nn = cos.search(query, reference, 2).unwrap();
        // 0 and 1 have the same direction: the tie goes to index 0.
        assert_eq!(nn.indices_of(0), &[0, 1]);
    }

    #[test]
    fn self_removal_follows_pml() {
        let nn = Neighbors {
            n: 2,
            k: 3,
            distances: vec![0.0, 1.0, 2.0, 0.0, 0.0, 1.0],
            indices: vec![0, 4, 5, 7, 3, 2],
        };
        let w = nn.without_self();
        assert_eq!(w.k, 2);
        // Row 0 contains itself; row 1 does not: its last column goes.
        assert_eq!(w.indices, vec![4, 5, 7, 3]);
        assert_eq!(w.distances, vec![1.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn width_mismatch_is_an_error_and_k_is_clamped() {
        let device = Default::default();
        let knn = KnnConfig::new().init();
        let q = Tensor::<B, 2>::zeros([2, 3], &device);
        let r = Tensor::<B, 2>::zeros([4, 2], &device);
        let err = knn.search(q, r.clone(), 1).unwrap_err().to_string();
        assert!(err.contains("width 3") && err.contains("width 2"), "{err}");
        let nn = knn.search(r.clone(), r, 10).unwrap();
        assert_eq!(nn.k, 4);
        assert_eq!(nn.indices_of(1), &[0, 1, 2, 3]);
        assert!(
            KnnConfig::new()
                .with_query_batch_size(0)
                .try_init()
                .is_err()
        );
    }
}
