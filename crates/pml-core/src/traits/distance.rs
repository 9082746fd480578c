use std::ops::Range;

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::{
    blocks::{map_blocks, row_blocks},
    math::{matmul, scalar_div, squared_distances},
    tensor::{constant, contiguous, diagonal_of_tile, narrow_to},
};

/// A distance or similarity between embeddings (PML's `BaseDistance`).
///
/// Inverted measures (similarities: cosine, dot product) are larger for closer pairs; the
/// helpers [`margin`](Distance::margin), [`smallest`](Distance::smallest) and
/// [`largest`](Distance::largest) let losses be written once for both kinds.
pub trait Distance<B: Backend> {
    /// The matrix between every query row and every reference row.
    ///
    /// `reference = None` means the query itself (PML's `ref_emb=None`); implementations may use
    /// it to make the diagonal exact.
    ///
    /// # Shapes
    /// - `query`: `[n, d]`, `reference`: `[m, d]`
    /// - output: `[n, m]` (`[n, n]` without a reference)
    ///
    /// # Panics
    /// If the widths of `query` and `reference` differ.
    fn forward(&self, query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>) -> Tensor<B, 2>;

    /// `true` for similarities (larger = closer).
    fn is_inverted(&self) -> bool;

    /// The inputs of [`forward`](Distance::forward), prepared (normalized) on the autodiff
    /// graph, and the Gram-matrix form of the matrix, so that a loss can compute the matrix in
    /// blocks off the graph and attach its own derivatives through `[n, d]`-sized operations
    /// ([`GramInputs`]); `None` for distances without such a form, whose callers differentiate
    /// `forward` instead.
    ///
    /// # Panics
    /// If the widths of `query` and `reference` differ.
    fn gram_inputs(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> Option<GramInputs<B>> {
        let _ = (query, reference);
        None
    }

    /// The whole matrix of [`forward`](Distance::forward) as a [`DetachedMatrix`]: through
    /// [`gram_inputs`](Distance::gram_inputs) where the distance has a Gram form, otherwise
    /// `forward` on the autodiff graph.
    ///
    /// # Shapes
    /// - `query`: `[n, d]`, `reference`: `[m, d]`; the matrix `[n, m]` (`[n, n]` without a
    ///   reference)
    ///
    /// # Panics
    /// If the widths of `query` and `reference` differ.
    fn detached_matrix(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> DetachedMatrix<B> {
        match self.gram_inputs(query.clone(), reference.clone()) {
            Some(g) => g.block(0, g.rows()),
            None => DetachedMatrix::tracked(self.forward(query, reference)),
        }
    }

    /// `[f(rows, matrix of those query rows), …]` over blocks of query rows of about `entries`
    /// entries (at least one row each, and one empty block `0..0` for no rows), in row order,
    /// on up to `threads` threads ([`block_threads`](crate::blocks::block_threads) gives the
    /// CPU's threads on a host backend, 1 elsewhere).
    ///
    /// Where the distance has a Gram form the blocks come from [`GramInputs::map_blocks`]: they
    /// are exact whatever their size, so they are split for the threads too. Other distances
    /// are differentiated through [`forward`](Distance::forward) on the autodiff graph, on one
    /// thread: the whole batch in one block, measured with `reference` as given (so that
    /// `None` keeps a self-distance diagonal exact, as PML measures it), where its matrix fits
    /// `entries`, else blocks of rows against the reference.
    ///
    /// # Panics
    /// If the widths of `query` and `reference` differ.
    fn map_detached_blocks<T: Send>(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
        entries: usize,
        threads: usize,
        f: impl Fn(Range<usize>, DetachedMatrix<B>) -> T + Sync,
    ) -> Vec<T>
    where
        Self: Sized,
    {
        if let Some(g) = self.gram_inputs(query.clone(), reference.clone()) {
            return g.map_blocks(entries, threads, f);
        }
        let n = query.dims()[0];
        let m = reference.as_ref().map_or(n, |r| r.dims()[0]);
        if n.saturating_mul(m) <= entries {
            return vec![f(
                0..n,
                DetachedMatrix::tracked(self.forward(query, reference)),
            )];
        }
        let reference = reference.unwrap_or_else(|| query.clone());
        row_blocks(n, m, entries, 1)
            .into_iter()
            .map(|rows| {
                let block = query.clone().narrow(0, rows.start, rows.len());
                let mat = self.forward(block, Some(reference.clone()));
                f(rows, DetachedMatrix::tracked(mat))
            })
            .collect()
    }

    /// How much `x` exceeds `y` in the "farther" direction: `x - y`, or `y - x` for similarities.
    fn margin<const D: usize>(&self, x: Tensor<B, D>, y: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() { y - x } else { x - y }
    }

    /// `∂ margin(x, y) / ∂x`: `1`, or `−1` for similarities.
    fn margin_slope(&self) -> f64 {
        if self.is_inverted() { -1.0 } else { 1.0 }
    }

    /// [`margin`](Distance::margin) with a constant on the right: `x - c`, or `c - x`.
    fn margin_to<const D: usize>(&self, x: Tensor<B, D>, c: f64) -> Tensor<B, D> {
        if self.is_inverted() {
            x.neg().add_scalar(c)
        } else {
            x.sub_scalar(c)
        }
    }

    /// [`margin`](Distance::margin) with a constant on the left: `c - x`, or `x - c`.
    fn margin_from<const D: usize>(&self, c: f64, x: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() {
            x.sub_scalar(c)
        } else {
            x.neg().add_scalar(c)
        }
    }

    /// Element-wise closest of two values: `min`, or `max` for similarities.
    fn smallest<const D: usize>(&self, a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() {
            a.max_pair(b)
        } else {
            a.min_pair(b)
        }
    }

    /// Element-wise farthest of two values: `max`, or `min` for similarities.
    fn largest<const D: usize>(&self, a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() {
            a.min_pair(b)
        } else {
            a.max_pair(b)
        }
    }
}

/// How a distance matrix depends on the Gram matrix `G = q rᵀ` of its prepared inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GramForm {
    /// `mat = G^power`: dot products (of normalized rows for the cosine similarity).
    Inner {
        /// The exponent (PML's `power`).
        power: f64,
    },
    /// `mat = d^power` with `d² = ‖q_i‖² + ‖r_j‖² − 2 G_ij` clamped at zero: Euclidean
    /// distances. Where `d = 0` (or `d` overflowed) the derivative is taken as zero, as
    /// [`safe_root`](crate::math::safe_root)'s.
    Euclidean {
        /// The exponent (PML's `power`).
        power: f64,
    },
}

/// The prepared inputs of a distance with a [`GramForm`] ([`Distance::gram_inputs`]): the
/// matrix is computed [`block`](Self::block) by block of query rows off the autodiff graph,
/// and a loss with derivatives `S = ∂L/∂mat` attaches them as gradients w.r.t. the inputs
/// with [`DetachedMatrix::link_rows`], without differentiating any `[n, m]` operation.
///
/// # Shapes
/// - `query`: `[n, d]`, `reference`: `[m, d]` (the query itself when `None`)
#[derive(Clone, Debug)]
pub struct GramInputs<B: Backend> {
    form: GramForm,
    /// The prepared inputs, on the autodiff graph.
    query: Tensor<B, 2>,
    reference: Tensor<B, 2>,
    /// `[reference, ‖reference‖²]`, `[m, d + 1]`, on the graph (Euclidean form only).
    reference_aug: Option<Tensor<B, 2>>,
    /// Constant `referenceᵀ`, `[d, m]`, laid out contiguously once (the right operand of
    /// every block's product).
    reference_t: Tensor<B, 2>,
    /// Constant `‖query‖²` `[n, 1]` and `‖reference‖²ᵀ` `[1, m]` (Euclidean form only).
    squares: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    is_self: bool,
}

impl<B: Backend> GramInputs<B> {
    /// `query` and `reference` (`None`: the query itself, whose self-distances are then exact
    /// zeros) already prepared by the distance, differentiable.
    ///
    /// # Panics
    /// If the widths differ.
    pub fn new(query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>, form: GramForm) -> Self {
        let is_self = reference.is_none();
        let reference = reference.unwrap_or_else(|| query.clone());
        let ([_, d], [_, dr]) = (query.dims(), reference.dims());
        assert_eq!(
            d, dr,
            "GramInputs: query width {d} but reference width {dr}"
        );
        let reference_c = constant(reference.clone());
        let squares = |x: Tensor<B, 2>| x.powi_scalar(2).sum_dim(1);
        let euclidean = matches!(form, GramForm::Euclidean { .. });
        let reference_aug =
            euclidean.then(|| Tensor::cat(vec![reference.clone(), squares(reference.clone())], 1));
        let squares = euclidean.then(|| {
            let query_sq = squares(constant(query.clone()));
            let reference_sq = if is_self {
                query_sq.clone()
            } else {
                squares(reference_c.clone())
            };
            (query_sq, reference_sq.transpose())
        });
        Self {
            form,
            squares,
            reference_t: contiguous(reference_c.transpose()),
            query,
            reference,
            reference_aug,
            is_self,
        }
    }

    /// Query rows `n`.
    pub fn rows(&self) -> usize {
        self.query.dims()[0]
    }

    /// How the matrix depends on the Gram matrix.
    pub fn form(&self) -> GramForm {
        self.form
    }

    /// `[n]`: the Gram entries `q_i · r_{cols_i}` of the prepared inputs, on the autodiff graph,
    /// for a loss that differentiates a few entries through operations of its own (and the rest
    /// of the matrix through a [`DetachedMatrix`]'s link).
    ///
    /// # Shapes
    /// - `cols`: `[n]`, values in `0..m`
    pub fn gram_entries(&self, cols: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let n = self.rows();
        let picked = self.reference.clone().select(0, cols);
        (self.query.clone() * picked).sum_dim(1).reshape([n])
    }

    /// `[f(rows, block(rows)), …]` over the [`row_blocks`] of about `entries` entries, in row
    /// order, on up to `threads` threads ([`block_threads`](crate::blocks::block_threads); at
    /// least one block per thread, one empty block for no rows).
    pub fn map_blocks<T: Send>(
        &self,
        entries: usize,
        threads: usize,
        f: impl Fn(Range<usize>, DetachedMatrix<B>) -> T + Sync,
    ) -> Vec<T> {
        let blocks = row_blocks(self.rows(), self.reference.dims()[0], entries, threads);
        map_blocks(blocks.len(), threads, |k| {
            let rows = blocks[k].clone();
            f(rows.clone(), self.block(rows.start, rows.len()))
        })
    }

    /// `[f(rows, cols, weight, tile(rows, cols)), …]` over tiles that stand for the whole
    /// matrix of a query with itself (no reference) as its upper triangle: tiles of the
    /// [`row_blocks`] (at least four, and one per thread) with themselves, `weight` 1, and with
    /// the columns right of them in pieces of about `entries` entries, `weight` 2 (each also
    /// stands for its mirror image). For a loss whose terms are sums over the matrix of a
    /// function of its entries, with symmetric slopes (`S_ij = S_ji`), the weighted sums over
    /// the tiles are the sums over the matrix, and the tiles' gradients
    /// ([`MatrixLink::sum_gradient`]) with the weighted slopes are the matrix's: about half the
    /// work of [`map_blocks`](Self::map_blocks). With a reference: `map_blocks`, columns
    /// `0..m`, `weight` 1.
    pub fn map_upper_tiles<T: Send>(
        &self,
        entries: usize,
        threads: usize,
        f: impl Fn(Range<usize>, Range<usize>, f64, DetachedMatrix<B>) -> T + Sync,
    ) -> Vec<T> {
        let (n, m) = (self.rows(), self.reference.dims()[0]);
        if !self.is_self {
            return self.map_blocks(entries, threads, |rows, matrix| f(rows, 0..m, 1.0, matrix));
        }
        let mut tiles = Vec::new();
        for rows in row_blocks(n, n, entries, threads.max(4)) {
            let width = (entries / rows.len().max(1)).max(1);
            tiles.push((rows.clone(), rows.clone(), 1.0));
            for start in (rows.end..n).step_by(width) {
                tiles.push((rows.clone(), start..(start + width).min(n), 2.0));
            }
        }
        map_blocks(tiles.len(), threads, |k| {
            let (rows, cols, weight) = tiles[k].clone();
            f(rows.clone(), cols.clone(), weight, self.tile(rows, cols))
        })
    }

    /// The matrix of query rows `start..start + len` against the whole reference, `[len, m]`.
    ///
    /// # Panics
    /// If the rows are out of range.
    pub fn block(&self, start: usize, len: usize) -> DetachedMatrix<B> {
        self.tile(start..start + len, 0..self.reference.dims()[0])
    }

    /// The matrix of query rows `rows` against reference rows `cols`, `[rows.len(),
    /// cols.len()]`.
    ///
    /// # Panics
    /// If the rows or columns are out of range.
    pub fn tile(&self, rows: Range<usize>, cols: Range<usize>) -> DetachedMatrix<B> {
        let query = narrow_to(constant(self.query.clone()), 0, rows.clone());
        let reference_t = narrow_to(self.reference_t.clone(), 1, cols.clone());
        let gram = matmul(query, reference_t);
        let (mat, factor) = match self.form {
            GramForm::Inner { power } => {
                if power == 1.0 {
                    (gram, None)
                } else {
                    let factor = gram.clone().powf_scalar(power - 1.0).mul_scalar(power);
                    (gram.powf_scalar(power), Some(factor))
                }
            }
            GramForm::Euclidean { power } => {
                let (query_sq, reference_sq_t) = self
                    .squares
                    .clone()
                    .expect("the Euclidean form keeps the squared norms");
                let mut d2 = squared_distances(
                    gram,
                    narrow_to(query_sq, 0, rows.clone()),
                    narrow_to(reference_sq_t, 1, cols.clone()),
                );
                if self.is_self && rows.start < cols.end && cols.start < rows.end {
                    let diagonal = diagonal_of_tile(rows.clone(), cols.clone(), &d2.device());
                    d2 = d2.mask_fill(diagonal, 0.0);
                }
                euclidean_power(d2, power)
            }
        };
        DetachedMatrix {
            mat,
            link: MatrixLink(Link::Gram(GramLink {
                factor,
                inputs: self.clone(),
                rows,
                cols,
            })),
        }
    }
}

/// `(d^power, ∂d^power/∂d²)` from the squared distances `d2` (constants), the derivative zero
/// where `d = 0` or `d = ∞`.
fn euclidean_power<B: Backend>(
    d2: Tensor<B, 2>,
    power: f64,
) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
    if power == 2.0 {
        return (d2, None);
    }
    let zero = d2.clone().lower_equal_elem(0.0);
    let root = d2.sqrt();
    if power == 1.0 {
        // `1 / (2d)`: infinite where `d = 0` until masked, and already zero where `d = ∞`.
        let factor = scalar_div(0.5, root.clone()).mask_fill(zero, 0.0);
        return (root, Some(factor));
    }
    let inf = root.clone().greater_equal_elem(f64::INFINITY);
    let safe = root.clone().mask_fill(zero.clone(), 1.0);
    let factor = safe.powf_scalar(power - 2.0).mul_scalar(power / 2.0);
    (
        root.powf_scalar(power),
        Some(factor.mask_fill(zero.bool_or(inf), 0.0)),
    )
}

/// A distance matrix (or a block of rows of one) computed off the autodiff graph, with what
/// attaches a loss's derivatives `S = ∂L/∂mat` (a constant) to its inputs:
/// [`link_rows`](Self::link_rows).
///
/// From a [`GramInputs`] block, with `T = S ⊙ ∂mat/∂X` (`X` the Gram matrix or the squared
/// distances), the link of row `i` is the linear form
///
/// - inner: `q_i · (T r)_i`,
/// - Euclidean: `(Σ_j T_ij) ‖q_i‖² + (T ‖r‖²)_i − 2 q_i · (T r)_i`,
///
/// whose gradient w.r.t. `q` and `r` is that of `Σ_j S_ij mat_ij`: one `[b, m] × [m, d]`
/// product forward and one backward, every other operation on `[b, d]`. From a matrix on the
/// graph ([`tracked`](Self::tracked)), it is `Σ_j S_ij mat_ij` itself.
///
/// # Shapes
/// - `mat`: `[b, m]`
#[derive(Clone, Debug)]
pub struct DetachedMatrix<B: Backend> {
    mat: Tensor<B, 2>,
    link: MatrixLink<B>,
}

/// What attaches derivatives to the inputs of a [`DetachedMatrix`], without the matrix
/// ([`DetachedMatrix::into_link`]): for a loss that keeps the links of its blocks until it
/// knows their slopes, and the matrices not that long.
#[derive(Clone, Debug)]
pub struct MatrixLink<B: Backend>(Link<B>);

#[derive(Clone, Debug)]
enum Link<B: Backend> {
    Gram(GramLink<B>),
    Tracked(Tensor<B, 2>),
}

/// The link of a [`GramInputs`] tile: rows `rows` and columns `cols` of its matrix.
#[derive(Clone, Debug)]
struct GramLink<B: Backend> {
    /// `∂mat/∂X` (`None`: 1), a constant `[rows, cols]`.
    factor: Option<Tensor<B, 2>>,
    inputs: GramInputs<B>,
    rows: Range<usize>,
    cols: Range<usize>,
}

impl<B: Backend> GramLink<B> {
    /// `T = slopes ⊙ ∂mat/∂X`.
    fn chain(&self, slopes: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.factor {
            Some(f) => slopes * f.clone(),
            None => slopes,
        }
    }

    /// [`DetachedMatrix::link_rows`], `[b, 1]`.
    fn rows(&self, slopes: Tensor<B, 2>) -> Tensor<B, 2> {
        let t = self.chain(slopes);
        let g = &self.inputs;
        let query = narrow_to(g.query.clone(), 0, self.rows.clone());
        match &g.reference_aug {
            None => {
                let reference = narrow_to(g.reference.clone(), 0, self.cols.clone());
                (query * matmul(t, reference)).sum_dim(1)
            }
            Some(aug) => {
                let aug = narrow_to(aug.clone(), 0, self.cols.clone());
                let d = query.dims()[1];
                let tr = matmul(t.clone(), aug);
                let q_sq = query.clone().powi_scalar(2).sum_dim(1);
                let cross = (query * tr.clone().narrow(1, 0, d)).sum_dim(1);
                t.sum_dim(1) * q_sq + tr.narrow(1, d, 1) - cross.mul_scalar(2.0)
            }
        }
    }

    /// [`MatrixLink::sum_gradient`].
    fn sum_gradient(&self, slopes: Tensor<B, 2>) -> GramGradient<B> {
        let t = self.chain(slopes);
        let g = &self.inputs;
        let q = narrow_to(constant(g.query.clone()), 0, self.rows.clone());
        let r = narrow_to(constant(g.reference.clone()), 0, self.cols.clone());
        let t_r = matmul(t.clone(), r.clone());
        // `Tᵀ q` as `(qᵀ T)ᵀ`: `T` keeps its layout.
        let t_q = matmul(q.clone().transpose(), t.clone()).transpose();
        let (query, reference) = if self.inputs.reference_aug.is_some() {
            (
                (q * t.clone().sum_dim(1) - t_r).mul_scalar(2.0),
                (r * t.sum_dim(0).transpose() - t_q).mul_scalar(2.0),
            )
        } else {
            (t_r, t_q)
        };
        GramGradient {
            inputs: self.inputs.clone(),
            rows: self.rows.clone(),
            cols: self.cols.clone(),
            query,
            reference,
        }
    }
}

/// The gradient of `Σ_ij S_ij mat_ij` w.r.t. the inputs of one block or tile of a matrix,
/// computed off the autodiff graph ([`MatrixLink::sum_gradient`]); [`attach`](Self::attach)
/// attaches those of all the blocks of a matrix at once.
#[derive(Clone, Debug)]
pub struct SumGradient<B: Backend>(SumPart<B>);

#[derive(Clone, Debug)]
enum SumPart<B: Backend> {
    /// `Σ S ⊙ mat` on the graph (a matrix without a Gram form).
    Tracked(Tensor<B, 1>),
    Gram(GramGradient<B>),
}

/// The gradient of a [`GramInputs`] tile, constants: w.r.t. its query rows (`[b, d]`) and its
/// reference rows (`[c, d]`).
#[derive(Clone, Debug)]
struct GramGradient<B: Backend> {
    inputs: GramInputs<B>,
    rows: Range<usize>,
    cols: Range<usize>,
    query: Tensor<B, 2>,
    reference: Tensor<B, 2>,
}

/// `acc` with `part` added to its rows `start..`.
fn add_rows<B: Backend>(acc: Tensor<B, 2>, start: usize, part: Tensor<B, 2>) -> Tensor<B, 2> {
    let [len, d] = part.dims();
    if start == 0 && len == acc.dims()[0] {
        return acc + part;
    }
    let range = [start..start + len, 0..d];
    let sum = acc.clone().slice(range.clone()) + part;
    acc.slice_assign(range, sum)
}

impl<B: Backend> SumGradient<B> {
    /// `[1]`: a value whose gradient is the sum of `parts` (blocks or tiles of one matrix; its
    /// value is not the sum of their `Σ S ⊙ mat`: use it through
    /// [`value_with_gradient`](crate::tensor::value_with_gradient)).
    ///
    /// The gradients w.r.t. the inputs of a [`GramInputs`] are summed as constants and
    /// attached through one product with each input (`Σ q ⊙ ∂q + Σ r ⊙ ∂r`, one product when
    /// the reference is the query), so that the autodiff graph holds two `[n, d]`-sized
    /// operations whatever the number of blocks.
    ///
    /// # Panics
    /// If `parts` is empty.
    pub fn attach(parts: Vec<Self>) -> Tensor<B, 1> {
        let mut total: Option<Tensor<B, 1>> = None;
        let mut add = |x: Tensor<B, 1>| total = Some(total.take().map_or(x.clone(), |t| t + x));
        let mut gram = Vec::new();
        for part in parts {
            match part.0 {
                SumPart::Tracked(x) => add(x),
                SumPart::Gram(g) => gram.push(g),
            }
        }
        if let Some(first) = gram.first() {
            let inputs = first.inputs.clone();
            let zeros = |x: &Tensor<B, 2>| constant(x.clone()).zeros_like();
            let mut query = zeros(&inputs.query);
            let mut reference = (!inputs.is_self).then(|| zeros(&inputs.reference));
            for g in gram {
                query = add_rows(query, g.rows.start, g.query);
                match reference.take() {
                    Some(r) => reference = Some(add_rows(r, g.cols.start, g.reference)),
                    None => query = add_rows(query, g.cols.start, g.reference),
                }
            }
            add((inputs.query.clone() * query).sum());
            if let Some(grad) = reference {
                add((inputs.reference.clone() * grad).sum());
            }
        }
        total.expect("at least one part")
    }
}

impl<B: Backend> DetachedMatrix<B> {
    /// A matrix on the autodiff graph (a distance without a Gram form).
    pub fn tracked(mat: Tensor<B, 2>) -> Self {
        Self {
            mat: constant(mat.clone()),
            link: MatrixLink(Link::Tracked(mat)),
        }
    }

    /// The matrix, a constant `[b, m]`.
    pub fn mat(&self) -> &Tensor<B, 2> {
        &self.mat
    }

    /// The link alone, without the matrix.
    pub fn into_link(self) -> MatrixLink<B> {
        self.link
    }

    /// [`MatrixLink::link_rows`] of the matrix's link.
    ///
    /// # Shapes
    /// - `slopes`: `[b, m]`, a constant
    pub fn link_rows(&self, slopes: Tensor<B, 2>) -> Tensor<B, 1> {
        self.link.link_rows(slopes)
    }

    /// [`MatrixLink::link_sum`] of the matrix's link.
    ///
    /// # Shapes
    /// - `slopes`: `[b, m]`, a constant
    pub fn link_sum(&self, slopes: Tensor<B, 2>) -> Tensor<B, 1> {
        self.link.link_sum(slopes)
    }
}

impl<B: Backend> MatrixLink<B> {
    /// `[b]`: row `i` has the gradient of `Σ_j slopes_ij mat_ij` w.r.t. the inputs (its value is
    /// not that sum; use it through [`value_with_gradient`](crate::tensor::value_with_gradient)).
    /// Zeros on a backend without autodiff.
    ///
    /// # Shapes
    /// - `slopes`: `[b, m]`, a constant
    pub fn link_rows(&self, slopes: Tensor<B, 2>) -> Tensor<B, 1> {
        let b = slopes.dims()[0];
        let device = slopes.device();
        if !B::ad_enabled(&device) {
            return Tensor::zeros([b], (&device, slopes.dtype()));
        }
        let link = match &self.0 {
            Link::Tracked(mat) => (mat.clone() * slopes).sum_dim(1),
            Link::Gram(g) => g.rows(slopes),
        };
        link.reshape([b])
    }

    /// `[1]`: the gradient of `Σ_ij slopes_ij mat_ij` w.r.t. the inputs, for a loss that only
    /// sums its links (the sum of [`link_rows`](Self::link_rows), with another value):
    /// [`SumGradient::attach`] of this block's [`sum_gradient`](Self::sum_gradient). Zero on a
    /// backend without autodiff.
    ///
    /// # Shapes
    /// - `slopes`: `[b, m]`, a constant
    pub fn link_sum(&self, slopes: Tensor<B, 2>) -> Tensor<B, 1> {
        let device = slopes.device();
        if !B::ad_enabled(&device) {
            return Tensor::zeros([1], (&device, slopes.dtype()));
        }
        SumGradient::attach(vec![self.sum_gradient(slopes)])
    }

    /// The gradient of `Σ_ij slopes_ij mat_ij` w.r.t. the inputs, for a loss that sums the
    /// links of all its blocks: [`SumGradient::attach`] attaches the blocks' gradients at once.
    ///
    /// From a [`GramInputs`] tile (query rows `q`, reference rows `r`), with `T = S ⊙
    /// ∂mat/∂X` as in [`link_rows`](Self::link_rows), the gradients are computed on constants:
    ///
    /// - inner: `∂q = T r`, `∂r = Tᵀ q`,
    /// - Euclidean: `∂q_i = 2 ((Σ_j T_ij) q_i − (T r)_i)`, `∂r_j = 2 ((Σ_i T_ij) r_j − (Tᵀ q)_j)`.
    ///
    /// Both `[b, m]` products are forward products whose operand `T` keeps its layout (`Tᵀ q`
    /// as `(qᵀ T)ᵀ`). (Autodiff of [`link_rows`](Self::link_rows) multiplies by `Tᵀ` in the
    /// backward pass, which burn-ndarray first copies element by element.)
    ///
    /// # Shapes
    /// - `slopes`: `[b, m]`, a constant
    pub fn sum_gradient(&self, slopes: Tensor<B, 2>) -> SumGradient<B> {
        SumGradient(match &self.0 {
            Link::Tracked(mat) => SumPart::Tracked((mat.clone() * slopes).sum()),
            Link::Gram(g) => SumPart::Gram(g.sum_gradient(slopes)),
        })
    }
}
