//! Finite-difference checks of autodiff gradients, in float64 (tests only).

use burn::{
    backend::{Autodiff, NdArray},
    tensor::{DType, Tensor, TensorData},
};
use pml_core::{
    LossInput, MetricLoss,
    rng::SeededRng,
    tensor::{float_vec, int_tensor},
};

/// Float64 autodiff backend. Burn 0.21 keeps one default dtype per device, shared by
/// `NdArray<f32>` and `NdArray<f64>`, so the inputs are created with an explicit `F64` dtype.
pub type B64 = Autodiff<NdArray<f64>>;

/// Autodiff gradient and one-sided finite differences of a scalar function of `[n, d]`
/// embeddings, at `x`.
pub struct Differences {
    /// The value at `x`.
    pub value: f64,
    /// The autodiff gradient.
    pub analytic: Vec<f64>,
    /// `(L(x + h eᵢ) − L(x)) / h`.
    pub forward: Vec<f64>,
    /// `(L(x) − L(x − h eᵢ)) / h`.
    pub backward: Vec<f64>,
}

impl Differences {
    /// Central differences `(L(x + h eᵢ) − L(x − h eᵢ)) / 2h`.
    pub fn central(&self) -> Vec<f64> {
        self.forward
            .iter()
            .zip(&self.backward)
            .map(|(f, b)| (f + b) / 2.0)
            .collect()
    }

    /// The largest finite-difference magnitude (at least `1e-12`).
    pub fn scale(&self) -> f64 {
        self.forward
            .iter()
            .chain(&self.backward)
            .fold(1e-12f64, |m, g| m.max(g.abs()))
    }
}

/// [`Differences`] of `loss(x)` with step `h`; `loss` gets the embeddings as a leaf tensor.
pub fn differences(
    loss: impl Fn(Tensor<B64, 2>) -> Tensor<B64, 1>,
    x: &[f64],
    [n, d]: [usize; 2],
    h: f64,
) -> Differences {
    let device = Default::default();
    let leaf = |values: Vec<f64>| {
        Tensor::<B64, 2>::from_data(TensorData::new(values, [n, d]), (&device, DType::F64))
            .require_grad()
    };
    let at = |values: Vec<f64>| -> f64 { loss(leaf(values)).into_scalar() };
    let emb = leaf(x.to_vec());
    let out = loss(emb.clone());
    let analytic = float_vec(
        emb.grad(&out.backward())
            .expect("gradient reaches the embeddings"),
    );
    let value: f64 = out.into_scalar();
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    for i in 0..x.len() {
        let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
        plus[i] += h;
        minus[i] -= h;
        forward.push((at(plus) - value) / h);
        backward.push((value - at(minus)) / h);
    }
    Differences {
        value,
        analytic,
        forward,
        backward,
    }
}

/// Asserts that the autodiff gradient matches central differences to `1e-6` relative to the
/// largest entry, and returns that largest entry.
///
/// With `h = 1e-6` in float64 the truncation error is `O(h²) ≈ 1e-12` and the rounding error
/// `O(ε / h) ≈ 1e-10`, so `1e-6` (relative to the gradient's largest entry) leaves a wide margin
/// while catching any wrong term. Random inputs keep every hinge away from its kink.
pub fn assert_smooth_gradient(diff: &Differences, what: &str) -> f64 {
    let scale = diff.scale();
    for (i, (a, f)) in diff.analytic.iter().zip(diff.central()).enumerate() {
        assert!(
            (a - f).abs() <= 1e-6 * scale,
            "{what}: gradient {i}: autodiff {a:.9e} vs finite difference {f:.9e}"
        );
    }
    scale
}

/// Asserts that the autodiff gradient is a one-sided derivative or lies between the two, entry
/// by entry: at a kink (a tie, a margin exactly met) the loss is not differentiable and autodiff
/// returns one subgradient, as PyTorch does.
///
/// With `h = 1e-7` a one-sided difference is off by `h·|L''|/2`: the losses' second
/// derivatives stay below `1e3` times their largest gradient entry on these unit-scale inputs
/// (the largest logit scale is 64), so `1e-4` of the gradient scale bounds that error with room
/// to spare while a wrong gradient (off by a term, a sign, a factor) falls far outside.
pub fn assert_subgradient(diff: &Differences, what: &str) {
    let tol = 1e-4 * diff.scale().max(1.0);
    for (i, ((a, f), b)) in diff
        .analytic
        .iter()
        .zip(&diff.forward)
        .zip(&diff.backward)
        .enumerate()
    {
        assert!(
            a.is_finite() && *a >= f.min(*b) - tol && *a <= f.max(*b) + tol,
            "{what}: gradient {i}: autodiff {a:.9e} outside the one-sided differences [{b:.9e}, {f:.9e}]"
        );
    }
}

/// Compares the autodiff gradient of `loss` w.r.t. random `[n, d]` embeddings with central
/// differences `(L(x + h eᵢ) − L(x − h eᵢ)) / 2h` (see [`assert_smooth_gradient`]).
pub fn check_gradients(loss: &impl MetricLoss<B64>, labels: &[i64], d: usize, seed: u64) {
    let n = labels.len();
    let device = Default::default();
    let diff = differences(
        |emb| loss.forward(LossInput::new(emb, int_tensor(labels, &device))),
        &uniform(n * d, seed),
        [n, d],
        1e-6,
    );
    let scale = assert_smooth_gradient(&diff, "loss");
    assert!(scale > 1e-8, "the check needs a non-zero gradient");
}

/// Checks that `loss` gives the same value on a batch and on the same batch permuted (rows of
/// the embeddings and labels moved together), for a seeded random batch of 12 rows.
pub fn check_permutation_invariance(loss: &impl MetricLoss<B64>, seed: u64) {
    let labels: Vec<i64> = vec![0, 1, 2, 0, 1, 2, 0, 1, 3, 3, 2, 0];
    let (n, d) = (labels.len(), 6);
    let rng = SeededRng::new(seed);
    let x: Vec<f64> = (0..n * d).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    // A fixed permutation: a seeded Fisher-Yates shuffle.
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    let px: Vec<f64> = perm
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
        .collect();
    let pl: Vec<i64> = perm.iter().map(|&i| labels[i]).collect();
    let device = Default::default();
    let value = |values: Vec<f64>, labels: &[i64]| -> f64 {
        let emb =
            Tensor::<B64, 2>::from_data(TensorData::new(values, [n, d]), (&device, DType::F64));
        loss.forward(LossInput::new(emb, int_tensor(labels, &device)))
            .into_scalar()
    };
    let (a, b) = (value(x, &labels), value(px, &pl));
    assert!(
        (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        "{a} vs {b} after permuting the batch"
    );
}

/// Checks a loss's fast path: `forward` (which may reduce without listing tuples) against
/// `reduce(forward_terms(..))` (the listed tuples), value and gradient w.r.t. the embeddings
/// (and the reference embeddings, when given), in float64, to `1e-9` relative.
pub fn check_fast_path(
    loss: &impl MetricLoss<B64>,
    x: &[f64],
    labels: &[i64],
    reference: Option<(&[f64], &[i64])>,
) {
    let device = Default::default();
    let n = labels.len();
    let d = x.len() / n;
    let leaf = |v: &[f64], rows: usize| {
        Tensor::<B64, 2>::from_data(
            TensorData::new(v.to_vec(), [rows, d]),
            (&device, DType::F64),
        )
        .require_grad()
    };
    let run = |fast: bool| {
        let emb = leaf(x, n);
        let mut input = LossInput::new(emb.clone(), int_tensor(labels, &device));
        let ref_emb = reference.map(|(r, l)| {
            let r = leaf(r, l.len());
            input = input
                .clone()
                .with_reference(r.clone(), int_tensor(l, &device));
            r
        });
        let value = if fast {
            loss.forward(input)
        } else {
            loss.reduce(loss.forward_terms(&input), &input)
        };
        let grads = value.backward();
        let mut g = float_vec(emb.grad(&grads).expect("gradient reaches the embeddings"));
        if let Some(r) = ref_emb {
            g.extend(float_vec(
                r.grad(&grads).expect("gradient reaches the reference"),
            ));
        }
        (value.into_scalar(), g)
    };
    let (fast, fast_grad) = run(true);
    let (listed, listed_grad) = run(false);
    let scale = listed_grad
        .iter()
        .fold(listed.abs().max(1e-3), |m, g| m.max(g.abs()));
    assert!(
        (fast - listed).abs() <= 1e-9 * scale,
        "value: fast path {fast:.12e} vs listed tuples {listed:.12e}"
    );
    for (i, (a, b)) in fast_grad.iter().zip(&listed_grad).enumerate() {
        assert!(
            (a - b).abs() <= 1e-9 * scale,
            "gradient {i}: fast path {a:.12e} vs listed tuples {b:.12e}"
        );
    }
}

/// `n·d` seeded uniform values in `[-1, 1)`.
pub fn uniform(len: usize, seed: u64) -> Vec<f64> {
    let rng = SeededRng::new(seed);
    (0..len).map(|_| rng.uniform() * 2.0 - 1.0).collect()
}
