//! The finite-difference gradient check of every loss and wrapper ([`LossConfig::examples`]):
//! random batches (central differences), and batches with ties and margins exactly met
//! (one-sided differences bracket the autodiff subgradient). Tolerances are justified on
//! [`assert_smooth_gradient`] and [`assert_subgradient`].

use burn::tensor::Tensor;
use pml_core::{LossInput, MetricLoss, tensor::int_tensor};

use crate::gradcheck::{B64, assert_smooth_gradient, assert_subgradient, differences, uniform};
use crate::{AnyLoss, ContrastiveLossConfig, LossConfig, TripletMarginLossConfig};

const WIDTH: usize = 4;
const LABELS: [i64; 8] = [0, 0, 1, 1, 2, 2, 0, 1];

fn self_supervised(config: &LossConfig) -> bool {
    matches!(config.pml_name(), "VICRegLoss" | "SelfSupervisedLoss")
}

/// The loss of `config` at embeddings `emb` (`[8, WIDTH]`). Self-supervised losses take rows
/// `0..4` as the embeddings and `4..8` as the second view. `CrossBatchMemory` is built anew for
/// every call so that its memory does not change between evaluations; every other loss is
/// `built` (its random weights fixed).
fn loss_at(config: &LossConfig, built: &AnyLoss<B64>, emb: Tensor<B64, 2>) -> Tensor<B64, 1> {
    let device = Default::default();
    let fresh;
    let loss = if config.pml_name() == "CrossBatchMemory" {
        fresh = config.init(&device);
        &fresh
    } else {
        built
    };
    if self_supervised(config) {
        let half = LABELS.len() / 2;
        let a = emb.clone().slice([0..half, 0..WIDTH]);
        let b = emb.slice([half..2 * half, 0..WIDTH]);
        return loss.forward(LossInput::unlabeled(a).with_unlabeled_reference(b));
    }
    loss.forward(LossInput::new(emb, int_tensor(&LABELS, &device)))
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
    let shape = [LABELS.len(), WIDTH];
    let eval = |emb| loss_at(config, &built, emb);
    let mut scale: f64 = 0.0;
    for seed in [1, 2, 3] {
        let diff = differences(eval, &uniform(shape[0] * WIDTH, seed), shape, 1e-6);
        scale = scale.max(assert_smooth_gradient(
            &diff,
            &format!("{what}, seed {seed}"),
        ));
    }
    assert!(
        scale > 1e-8,
        "{what}: no random batch gives a non-zero gradient"
    );
    let kinks = if HISTOGRAM.contains(&config.pml_name()) {
        vec![("ties", tied())]
    } else {
        vec![("ties", tied()), ("lattice", lattice())]
    };
    for (batch, x) in kinks {
        let diff = differences(eval, &x, shape, 1e-7);
        assert!(
            diff.value.is_finite(),
            "{what} on {batch}: loss {}",
            diff.value
        );
        assert_subgradient(&diff, &format!("{what} on {batch}"));
    }
}

/// Losses finite differences cannot check here, each checked by its parity cases against PML's
/// gradient instead: CircleLoss detaches its weights `αp`, `αn` (Sun et al. 2020, as PML
/// does), so its gradient is by design not the derivative of its value; DynamicSoftMarginLoss
/// and CrossBatchMemory change state at every call (the stored histogram, the memory of
/// constant rows); ManifoldLoss draws random meta-classes at every call and takes no labels;
/// SmoothAPLoss needs classes of equal sizes (`smooth_ap.rs` checks its gradient on such a
/// batch).
const DETACHED: [&str; 5] = [
    "CircleLoss",
    "DynamicSoftMarginLoss",
    "CrossBatchMemory",
    "ManifoldLoss",
    "SmoothAPLoss",
];

/// Losses built from histograms (piecewise-linear bin weights): on the lattice several
/// distances sit on bin edges at once, where the one-sided derivatives do not bracket a
/// subgradient; their random batches are still checked.
const HISTOGRAM: [&str; 2] = ["FastAPLoss", "HistogramLoss"];

#[test]
fn every_loss_passes_its_gradient_check() {
    let failures: Vec<String> = LossConfig::examples(WIDTH, 3)
        .iter()
        .filter(|c| !DETACHED.contains(&c.pml_name()))
        .filter_map(|config| {
            std::panic::catch_unwind(|| check(config, config.pml_name()))
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
