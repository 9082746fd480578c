//! Triplet losses over *all* triplets of a batch without listing them: PML builds the
//! `O(n³)` index tensors of every `(anchor, positive, negative)` and one loss per triplet, which
//! costs seconds and gigabytes at `n = 1024`. When the reducer only needs totals (sum, mean,
//! average above / inside a threshold: [`TotalsReduction`]), the anchors are processed in
//! blocks of a fixed memory budget instead: each anchor's positives are gathered (padded to the
//! largest class, with a validity mask) and compared with the whole distance row, on constants.
//!
//! The gradient flows through the distance matrix `D` once: every triplet's loss `f(v)` with
//! `v = margin(d_ap, d_an) + m` has `∂f/∂d_ap = f'(v)·s` and `∂f/∂d_an = −f'(v)·s`, so the
//! reduced loss has the gradient of `margin(Σ Gp ⊙ D, Σ Gn ⊙ D)`, where `Gp[a, j]` (`Gn`)
//! adds up `f'(v)` over the kept triplets that use `(a, j)` as their positive (negative) pair;
//! it is attached with the matrix's link ([`DetachedMatrix::link_sum`]), and the value is the
//! exact sum of the kept losses ([`value_with_gradient`]), so values and gradients equal those
//! of the listed triplets.
//!
//! [`DetachedMatrix::link_sum`]: pml_core::DetachedMatrix::link_sum

use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData, activation::relu, backend::Backend};
use pml_core::{
    Distance, LossInput,
    labels::matches_and_diffs,
    math::{logistic, softplus},
    tensor::{int_vec, mask_to_float, value_with_gradient},
};
use pml_reducers::TotalsReduction;

use crate::base::LossSlots;

/// How many entries one block of `[anchors, positives, columns]` may hold (1 MB in `f32`); a
/// block's few temporaries stay in cache, and the peak memory stays `O(n·m)` whatever `n`.
const BLOCK_ENTRIES: usize = 1 << 18;

/// The per-triplet loss of a triplet margin loss: `f(margin(d_ap, d_an) + margin)` with `f` the
/// hinge or, with `smooth`, softplus; with `swap`, `d_an` is the closer of `d(a, n)` and
/// `d(p, n)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TripletHinge {
    pub margin: f64,
    pub swap: bool,
    pub smooth: bool,
}

/// Each anchor's positives (reference rows with its label, itself excluded when the batch is
/// its own reference), padded to the largest count: `[n, p]` indices and validity.
fn padded_positives<B: Backend>(
    input: &LossInput<B>,
    like: &Tensor<B, 2>,
) -> (Tensor<B, 2, Int>, Tensor<B, 2>, usize) {
    let (labels, ref_labels) = input.tuple_labels();
    let own = ref_labels.is_none();
    let labels = int_vec(labels);
    let ref_labels = ref_labels.map(int_vec);
    let refs = ref_labels.as_deref().unwrap_or(&labels);
    let mut by_label = std::collections::HashMap::<i64, Vec<i64>>::new();
    for (j, l) in refs.iter().enumerate() {
        by_label.entry(*l).or_default().push(j as i64);
    }
    let lists: Vec<Vec<i64>> = labels
        .iter()
        .enumerate()
        .map(|(a, l)| {
            let all = by_label.get(l).map(Vec::as_slice).unwrap_or(&[]);
            all.iter()
                .copied()
                .filter(|&j| !own || j != a as i64)
                .collect()
        })
        .collect();
    let n = labels.len();
    let p = lists.iter().map(Vec::len).max().unwrap_or(0);
    let mut idx = vec![0i64; n * p];
    let mut valid = vec![0f32; n * p];
    for (a, list) in lists.iter().enumerate() {
        for (k, &j) in list.iter().enumerate() {
            idx[a * p + k] = j;
            valid[a * p + k] = 1.0;
        }
    }
    let device = like.device();
    let idx = Tensor::from_data(TensorData::new(idx, [n, p]), &device);
    let valid = Tensor::<B, 2>::from_data(TensorData::new(valid, [n, p]), (&device, like.dtype()));
    (idx, valid, p)
}

impl TripletHinge {
    /// The loss over every triplet of `input` (no indices tuple, labels given; with `swap`, no
    /// reference set), reduced by `rule`, shape `[1]`.
    ///
    /// Entries of a block that are not triplets (padding positives, columns that are not
    /// negatives) get an infinitely close positive or infinitely far negative, so their `v` is
    /// `−∞` and their loss and slope exactly zero: no validity tensor is needed, and rules that
    /// keep zero losses subtract their count at the end.
    ///
    /// # Panics
    /// Without labels, or with a reference set without labels.
    pub fn reduce_all<B: Backend>(
        &self,
        slots: &LossSlots,
        input: &LossInput<B>,
        rule: TotalsReduction,
    ) -> Tensor<B, 1> {
        let dist = &slots.distance;
        let matrix = dist.detached_matrix(
            input.embeddings.clone(),
            input.reference.as_ref().map(|r| r.embeddings.clone()),
        );
        let dc = matrix.mat().clone();
        let [n, m] = dc.dims();
        let (pos_idx, pos_valid, p) = padded_positives(input, &dc);
        if p == 0 || m == 0 {
            return input.embeddings.clone().mul_scalar(0.0).sum();
        }
        // "Infinitely far" for this distance, and the margin moved onto d(a, p).
        let (far, shift) = if Distance::<B>::is_inverted(dist) {
            (f64::NEG_INFINITY, -self.margin)
        } else {
            (f64::INFINITY, self.margin)
        };
        let (labels, ref_labels) = input.tuple_labels();
        let (_, diffs) = matches_and_diffs(&labels, ref_labels.as_ref());
        let triplets =
            (pos_valid.clone().sum_dim(1) * mask_to_float(diffs.clone(), &dc).sum_dim(1)).sum();
        let neg_bias = dc.zeros_like().mask_fill(diffs.bool_not(), far);
        let pos_bias = pos_valid
            .zeros_like()
            .mask_fill(pos_valid.equal_elem(0.0), -far);
        let block = (BLOCK_ENTRIES / (p * m)).clamp(1, n);
        // Without `smooth`, a lower bound of zero keeps exactly the active triplets.
        let hinge_non_zero = |low: Option<f64>| !self.smooth && low == Some(0.0);
        let (mut gp_rows, mut gn_rows) = (Vec::new(), Vec::new());
        // With `swap`, negatives measured from the positive land on row `p` of `Gn`.
        let mut gn_swapped = self.swap.then(|| dc.zeros_like());
        let mut value = dc.zeros_like().sum();
        let mut kept_count = value.clone();
        for r0 in (0..n).step_by(block) {
            let r1 = (r0 + block).min(n);
            let b = r1 - r0;
            let rows = dc.clone().narrow(0, r0, b);
            let idx = pos_idx.clone().narrow(0, r0, b);
            let flat_idx = idx.clone().reshape([b * p]);
            let ap = (rows.clone().gather(1, idx.clone()) + pos_bias.clone().narrow(0, r0, b))
                .add_scalar(shift)
                .unsqueeze_dim::<3>(2);
            let bias = neg_bias.clone().narrow(0, r0, b);
            let an = (rows + bias.clone()).unsqueeze_dim::<3>(1);
            // As `smallest` (burn's `min_pair` / `max_pair`): `d(p, n)` only where strictly
            // closer.
            let (v, from_pn) = if self.swap {
                let pn = dc.clone().select(0, flat_idx.clone()).reshape([b, p, m])
                    + bias.unsqueeze_dim::<3>(1);
                let an = an.expand([b, p, m]);
                let from_pn = dist.margin(an.clone(), pn.clone()).greater_elem(0.0);
                (dist.margin(ap, dist.smallest(an, pn)), Some(from_pn))
            } else {
                (dist.margin(ap, an), None)
            };
            // The losses, which of them the rule keeps, and `f'(v)` on the kept ones.
            let (loss, w) = if self.smooth {
                (softplus(v.clone()), logistic(v))
            } else {
                let active = v.clone().greater_elem(0.0);
                let loss = relu(v);
                let slope = mask_to_float(active, &loss);
                (loss, slope)
            };
            let (loss, w) = match rule {
                // Average of non-zero losses: the hinge's kept losses are its active ones.
                TotalsReduction::Threshold { low, high: None } if hinge_non_zero(low) => {
                    kept_count = kept_count + w.clone().sum();
                    (loss, w)
                }
                _ => match rule.kept(&loss) {
                    Some(kept) => {
                        let kept = mask_to_float(kept, &loss);
                        kept_count = kept_count + kept.clone().sum();
                        (loss * kept.clone(), w * kept)
                    }
                    None => (loss, w),
                },
            };
            value = value + loss.sum();
            let w_an = match (from_pn, gn_swapped.as_mut()) {
                (Some(from_pn), Some(acc)) => {
                    let w_pn = w.clone().mask_fill(from_pn.clone().bool_not(), 0.0);
                    *acc = acc.clone().select_assign(
                        0,
                        flat_idx,
                        w_pn.reshape([b * p, m]),
                        IndexingUpdateOp::Add,
                    );
                    w.clone().mask_fill(from_pn, 0.0)
                }
                _ => w.clone(),
            };
            gn_rows.push(w_an.sum_dim(1).reshape([b, m]));
            let per_positive = w.sum_dim(2).reshape([b, p]);
            let zeros = Tensor::zeros([b, m], (&dc.device(), dc.dtype()));
            gp_rows.push(zeros.scatter(1, idx, per_positive, IndexingUpdateOp::Add));
        }
        let gp = Tensor::cat(gp_rows, 0);
        let gn = match gn_swapped {
            Some(acc) => Tensor::cat(gn_rows, 0) + acc,
            None => Tensor::cat(gn_rows, 0),
        };
        let slopes = (gp - gn).mul_scalar(Distance::<B>::margin_slope(dist));
        let total = value_with_gradient(value, matrix.link_sum(slopes));
        let count = match rule.kept(&triplets.zeros_like()) {
            None => triplets,
            // The padding entries (all of `n·p·m` that are not triplets) have a zero loss.
            Some(keeps_zero) => {
                let padding = triplets.clone().neg().add_scalar((n * p * m) as f64);
                kept_count - padding * mask_to_float(keeps_zero, &triplets)
            }
        };
        match rule {
            TotalsReduction::Sum => total,
            TotalsReduction::Mean | TotalsReduction::Threshold { .. } => {
                total / count.clamp_min(1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        TripletMarginLossConfig,
        gradcheck::{check_fast_path, uniform},
    };
    use pml_distances::{DistanceConfig, LpDistanceConfig};
    use pml_reducers::{
        MultipleReducersConfig, ReducerConfig, SumReducerConfig, ThresholdReducerConfig,
    };

    const LABELS: [i64; 12] = [0, 0, 1, 1, 1, 2, 0, 3, 3, 1, 2, 4];

    fn raw_lp() -> DistanceConfig {
        DistanceConfig::Lp(LpDistanceConfig::new().with_normalize_embeddings(false))
    }

    #[test]
    fn equals_the_listed_triplets_for_every_option() {
        let x = uniform(LABELS.len() * 5, 3);
        for distance in [DistanceConfig::lp(), raw_lp(), DistanceConfig::cosine()] {
            for (swap, smooth) in [(false, false), (true, false), (false, true), (true, true)] {
                let config = TripletMarginLossConfig::new()
                    .with_margin(0.3)
                    .with_swap(swap)
                    .with_smooth_loss(smooth)
                    .with_distance(distance.clone());
                check_fast_path(&config.init(), &x, &LABELS, None);
            }
        }
    }

    #[test]
    fn equals_the_listed_triplets_for_every_totals_reducer() {
        let x = uniform(LABELS.len() * 4, 5);
        let reducers = [
            ReducerConfig::mean(),
            ReducerConfig::Sum(SumReducerConfig::new()),
            ReducerConfig::Threshold(
                ThresholdReducerConfig::new()
                    .with_low(Some(0.05))
                    .with_high(Some(0.4)),
            ),
            ReducerConfig::Threshold(ThresholdReducerConfig::new().with_high(Some(0.3))),
            ReducerConfig::Multiple(MultipleReducersConfig::new(
                [("loss".to_string(), ReducerConfig::mean())].into(),
            )),
        ];
        for reducer in reducers {
            for smooth in [false, true] {
                let config = TripletMarginLossConfig::new()
                    .with_margin(0.2)
                    .with_smooth_loss(smooth)
                    .with_reducer(reducer.clone());
                check_fast_path(&config.init(), &x, &LABELS, None);
            }
        }
    }

    #[test]
    fn ties_and_margins_exactly_met() {
        // Integer points on a line, unnormalized: many triplets have d(a,p) - d(a,n) + 1 = 0
        // exactly, rows 4 and 5 coincide, and d(a,n) = d(p,n) ties for the swap.
        let x = [0.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 6.0, 1.0, 5.0];
        let labels = [0, 1, 0, 1, 0, 1, 2, 2, 1, 0];
        for swap in [false, true] {
            let config = TripletMarginLossConfig::new()
                .with_margin(1.0)
                .with_swap(swap)
                .with_distance(raw_lp());
            check_fast_path(&config.init(), &x, &labels, None);
            let mean = config.with_reducer(ReducerConfig::mean());
            check_fast_path(&mean.init(), &x, &labels, None);
        }
    }

    #[test]
    fn with_a_reference_set() {
        let x = uniform(6 * 3, 8);
        let r = uniform(9 * 3, 9);
        let config = TripletMarginLossConfig::new().with_margin(0.4);
        check_fast_path(
            &config.init(),
            &x,
            &[0, 1, 2, 0, 1, 5],
            Some((&r, &[1, 1, 0, 2, 2, 0, 3, 1, 0])),
        );
    }

    #[test]
    fn batches_without_triplets_give_a_zero_loss() {
        let x = uniform(4 * 3, 2);
        let config = TripletMarginLossConfig::new();
        check_fast_path(&config.init(), &x, &[0, 0, 0, 0], None);
        check_fast_path(&config.init(), &x, &[0, 1, 2, 3], None);
    }
}
