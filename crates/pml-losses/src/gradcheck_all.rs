//! The finite-difference gradient check of every loss and wrapper ([`LossConfig::examples`]):
//! random batches (central differences), and batches with ties and margins exactly met
//! (one-sided differences bracket the autodiff subgradient). Tolerances are justified on
//! [`assert_smooth_gradient`] and [`assert_subgradient`].

use burn::tensor::{DType, Tensor, TensorData};
use pml_core::{LossInput, MetricLoss, tensor::int_tensor};

use crate::gradcheck::{
    B64, Differences, assert_smooth_gradient, assert_subgradient, differences, uniform,
};
use crate::{AnyLoss, ContrastiveLossConfig, LossConfig, TripletMarginLossConfig};

const WIDTH: usize = 4;
const LABELS: [i64; 8] = [0, 0, 1, 1, 2, 2, 0, 1];

fn self_supervised(config: &LossConfig) -> bool {
    matches!(config.pml_name(), "VICRegLoss" | "SelfSupervisedLoss")
}

/// The loss of `config` at embeddings `emb` (`[8, WIDTH]`). Self-supervised losses take rows
/// `0..4` as the embeddings and `4..8` as the second view; ManifoldLoss takes no labels.
/// Stateful losses start from the same state at every call: DynamicSoftMarginLoss is built anew
/// (its running histogram), ManifoldLoss is a copy of `built` (its proxies and the state of its
/// seeded meta-class draw); every other loss is `built` (its random weights fixed).
fn loss_at(config: &LossConfig, built: &AnyLoss<B64>, emb: Tensor<B64, 2>) -> Tensor<B64, 1> {
    let device = Default::default();
    let fresh;
    let loss = match config.pml_name() {
        "DynamicSoftMarginLoss" => {
            fresh = config.init(&device);
            &fresh
        }
        "ManifoldLoss" => return built.clone().forward(LossInput::unlabeled(emb)),
        _ => built,
    };
    if self_supervised(config) {
        let half = LABELS.len() / 2;
        let a = emb.clone().slice([0..half, 0..WIDTH]);
        let b = emb.slice([half..2 * half, 0..WIDTH]);
        return loss.forward(LossInput::unlabeled(a).with_unlabeled_reference(b));
    }
    loss.forward(LossInput::new(emb, int_tensor(&LABELS, &device)))
}

/// [`Differences`] of the loss of `config` at the batch `x` (`[8, WIDTH]`, row-major).
///
/// CrossBatchMemory keeps detached copies of what it enqueues, so the derivative of its value
/// w.r.t. an enqueued row is by design not its gradient (zero). It is checked as PML's
/// `enqueue_mask` uses it: rows `0..4` are the anchors (the variables), rows `4..8` are
/// enqueued (constants), in a memory built anew for every call.
fn differences_at(config: &LossConfig, built: &AnyLoss<B64>, x: &[f64], h: f64) -> Differences {
    if config.pml_name() != "CrossBatchMemory" {
        return differences(
            |emb| loss_at(config, built, emb),
            x,
            [LABELS.len(), WIDTH],
            h,
        );
    }
    let device = Default::default();
    let half = LABELS.len() / 2;
    let queued = Tensor::<B64, 2>::from_data(
        TensorData::new(x[half * WIDTH..].to_vec(), [half, WIDTH]),
        (&device, DType::F64),
    );
    let mask: Vec<bool> = (0..LABELS.len()).map(|i| i >= half).collect();
    let eval = |anchors: Tensor<B64, 2>| {
        let AnyLoss::CrossBatchMemory(memory) = config.init::<B64>(&device) else {
            unreachable!("a CrossBatchMemory config builds a CrossBatchMemory")
        };
        let emb = Tensor::cat(vec![anchors, queued.clone()], 0);
        memory.forward_with_enqueue_mask(
            LossInput::new(emb, int_tensor(&LABELS, &device)),
            Tensor::from_data(TensorData::from(mask.as_slice()), &device),
        )
    };
    differences(eval, &x[..half * WIDTH], [half, WIDTH], h)
}

/// `[8, WIDTH]` rows: `pick(i)` selects which of a few fixed rows row `i` repeats.
fn rows(pick: impl Fn(usize) -> Vec<f64>) -> Vec<f64> {
    (0..LABELS.len()).flat_map(pick).collect()
}

/// Ties: identical rows inside a class (rows 0 and 1, 2 and 3) and across classes (rows 0 and
/// 4 with labels 0 and 2).
fn tied() -> Vec<f64> {
    let base = uniform(3 * WIDTH, 77);
    let row = |k: usize| base[k * WIDTH..(k + 1) * WIDTH].to_vec();
    rows(|i| row([0, 0, 1, 1, 0, 2, 2, 1][i]))
}

/// Lattice points `±eₖ`: every distance between distinct, non-opposite rows is exactly
/// `√2` (so `d(a, p) = d(a, n)`: a margin of 0 is exactly met), and rows 0 and 6 coincide.
fn lattice() -> Vec<f64> {
    let axis = |k: usize, sign: f64| {
        let mut r = vec![0.0; WIDTH];
        r[k] = sign;
        r
    };
    rows(|i| match i {
        0 | 6 => axis(0, 1.0),
        1 => axis(1, 1.0),
        2 => axis(2, 1.0),
        3 => axis(3, 1.0),
        4 => axis(0, -1.0),
        5 => axis(1, -1.0),
        _ => axis(2, -1.0),
    })
}

fn check(config: &LossConfig, what: &str) {
    let device = Default::default();
    let built = config.init::<B64>(&device);
    let mut scale: f64 = 0.0;
    for seed in [1, 2, 3] {
        let diff = differences_at(config, &built, &uniform(LABELS.len() * WIDTH, seed), 1e-6);
        scale = scale.max(assert_smooth_gradient(
            &diff,
            &format!("{what}, seed {seed}"),
        ));
    }
    assert!(
        scale > 1e-8,
        "{what}: no random batch gives a non-zero gradient"
    );
    let kinks = if MANY_KINKS_ON_THE_LATTICE.contains(&config.pml_name()) {
        vec![("ties", tied())]
    } else {
        vec![("ties", tied()), ("lattice", lattice())]
    };
    for (batch, x) in kinks {
        let diff = differences_at(config, &built, &x, 1e-7);
        assert!(
            diff.value.is_finite(),
            "{what} on {batch}: loss {}",
            diff.value
        );
        assert_subgradient(&diff, &format!("{what} on {batch}"));
    }
}

/// Losses whose gradient check is in their own file: CircleLoss detaches its weights `αp`,
/// `αn` (Sun et al. 2020, as PML does), so its gradient is by design the derivative of the
/// loss with the weights frozen (`circle.rs` checks it against finite differences of that);
/// SmoothAPLoss needs classes of equal sizes (`smooth_ap.rs` checks it on such a batch).
const CHECKED_ELSEWHERE: [&str; 2] = ["CircleLoss", "SmoothAPLoss"];

/// Losses with several kinks met at once on the lattice, where a move along one coordinate
/// crosses some of them one way and others the other way: the one-sided derivatives then each
/// see a different set of active pieces, while autodiff (as PyTorch's) takes one fixed branch at
/// every kink, which need not lie between them. FastAPLoss and HistogramLoss: several distances
/// on bin edges (piecewise-linear bin weights); ManifoldLoss: most cosine similarities are
/// exactly 0, the kink of its `clamp_min(0)`. Their random batches and the ties are checked.
const MANY_KINKS_ON_THE_LATTICE: [&str; 3] = ["FastAPLoss", "HistogramLoss", "ManifoldLoss"];

#[test]
fn every_loss_passes_its_gradient_check() {
    let failures: Vec<String> = LossConfig::examples(WIDTH, 3)
        .into_iter()
        .filter(|c| !CHECKED_ELSEWHERE.contains(&c.pml_name()))
        .map(|config| match config {
            // PML's K = 50 meta-classes need 50 rows; the batch has 8.
            LossConfig::Manifold(c) => LossConfig::Manifold(c.with_K(3)),
            other => other,
        })
        .filter_map(|config| {
            std::panic::catch_unwind(|| check(&config, config.pml_name()))
                .err()
                .map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| config.pml_name().to_string())
                })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn margins_exactly_met_get_a_subgradient() {
    // On the lattice every d(a, p) = d(a, n) = √2: a triplet margin of 0 sits on the hinge.
    let triplet = LossConfig::TripletMargin(TripletMarginLossConfig::new().with_margin(0.0));
    check(&triplet, "TripletMarginLoss(margin=0)");
    // Negatives at exactly √2 meet neg_margin = √2; tied positives meet pos_margin = 0.
    let contrastive = LossConfig::Contrastive(
        ContrastiveLossConfig::new()
            .with_pos_margin(0.0)
            .with_neg_margin(std::f64::consts::SQRT_2),
    );
    check(&contrastive, "ContrastiveLoss(pos_margin=0, neg_margin=√2)");
}
