use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{Distance, GramForm, GramInputs, math::safe_root, tensor::diagonal};

use crate::common::{BaseOptions, check_widths, empty_matrix, has_empty_side, squared_euclidean};

/// Configuration of [`LpDistance`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct LpDistanceConfig {
    /// Divide each embedding by its `p`-norm first.
    #[config(default = true)]
    pub normalize_embeddings: bool,
    /// The `p` of the Lp norm (`f64::INFINITY` for the max norm).
    #[config(default = 2.0)]
    pub p: f64,
    /// Raise every distance to this power.
    #[config(default = 1.0)]
    pub power: f64,
}

impl LpDistanceConfig {
    /// Builds the distance.
    ///
    /// # Panics
    /// If `p` is not positive or `power` is not finite.
    pub fn init(&self) -> LpDistance {
        LpDistance {
            options: BaseOptions::new("LpDistance", self.normalize_embeddings, self.p, self.power),
        }
    }
}

/// The Lp distance `d(x, y) = ‖x − y‖_p^power` (PML's `LpDistance`, `torch.cdist`), after
/// optional normalization of the rows.
///
/// With `p = 2` the matrix comes from one matrix product,
/// `‖x‖² + ‖y‖² − 2 x·y` (clamped at 0, exact zeros on the diagonal of a self-distance); with
/// `p = 2, power = 2` the square root is skipped. Other `p` values compute `|x − y|` in blocks of
/// query rows so that memory stays bounded. The gradient at a zero distance is zero, as in
/// PyTorch.
///
/// # Shapes
/// - query `[n, d]`, reference `[m, d]` → `[n, m]`
#[derive(Clone, Debug)]
pub struct LpDistance {
    options: BaseOptions,
}

/// Elements of the `[rows, m, d]` difference block used for `p != 2`.
const BLOCK_ELEMENTS: usize = 1 << 24;

impl LpDistance {
    fn general_p<B: Backend>(&self, q: Tensor<B, 2>, r: Tensor<B, 2>) -> Tensor<B, 2> {
        let p = self.options.p;
        let ([n, d], m) = (q.dims(), r.dims()[0]);
        if n == 0 || m == 0 || d == 0 {
            // No pairs, or zero-width rows (all at distance 0): nothing for the blocks to do.
            return Tensor::zeros([n, m], (&q.device(), q.dtype()));
        }
        let rows = (BLOCK_ELEMENTS / (m * d).max(1)).clamp(1, n.max(1));
        let blocks: Vec<Tensor<B, 2>> = (0..n)
            .step_by(rows)
            .map(|s| {
                let e = (s + rows).min(n);
                let qb = q.clone().slice([s..e, 0..d]).reshape([e - s, 1, d]);
                let diff = (qb - r.clone().reshape([1, m, d])).abs();
                let reduced = if p.is_infinite() {
                    diff.max_dim(2)
                } else if p == 1.0 {
                    diff.sum_dim(2)
                } else {
                    diff.powf_scalar(p).sum_dim(2)
                };
                safe_root(
                    reduced.reshape([e - s, m]),
                    if p.is_infinite() { 1.0 } else { p },
                )
            })
            .collect();
        Tensor::cat(blocks, 0)
    }
}

impl<B: Backend> Distance<B> for LpDistance {
    fn forward(&self, query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        check_widths("LpDistance", &query, reference.as_ref());
        if let Some(empty) = empty_matrix(&query, reference.as_ref()) {
            return empty;
        }
        let o = &self.options;
        let q = o.maybe_normalize(query);
        let r = reference.map(|r| o.maybe_normalize(r));
        if o.p == 2.0 {
            let d2 = squared_euclidean(q, r);
            if o.power == 2.0 {
                return d2;
            }
            return o.apply_power(safe_root(d2, 2.0));
        }
        let is_self = r.is_none();
        let r = r.unwrap_or_else(|| q.clone());
        let mat = self.general_p(q, r);
        let mat = if is_self {
            let (n, device) = (mat.dims()[0], mat.device());
            mat.mask_fill(diagonal([n, n], 0, &device), 0.0)
        } else {
            mat
        };
        o.apply_power(mat)
    }

    fn is_inverted(&self) -> bool {
        false
    }

    /// For `p = 2`: the Euclidean form, on the (optionally normalized) rows.
    fn gram_inputs(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> Option<GramInputs<B>> {
        let o = &self.options;
        if o.p != 2.0 || has_empty_side(&query, reference.as_ref()) {
            return None;
        }
        check_widths("LpDistance", &query, reference.as_ref());
        let form = GramForm::Euclidean { power: o.power };
        Some(GramInputs::new(
            o.maybe_normalize(query),
            reference.map(|r| o.maybe_normalize(r)),
            form,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use pml_core::tensor::float_vec;

    type B = NdArray;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn hand_checked_distances() {
        let device = Default::default();
        let q = Tensor::<B, 2>::from_floats([[0.0, 0.0], [3.0, 4.0]], &device);
        let r = Tensor::<B, 2>::from_floats([[3.0, 0.0]], &device);
        let raw = LpDistanceConfig::new().with_normalize_embeddings(false);
        close(
            &float_vec(raw.init().forward(q.clone(), Some(r.clone()))),
            &[3.0, 4.0],
        );
        close(
            &float_vec(
                raw.clone()
                    .with_p(1.0)
                    .init()
                    .forward(q.clone(), Some(r.clone())),
            ),
            &[3.0, 4.0],
        );
        close(
            &float_vec(
                raw.clone()
                    .with_p(f64::INFINITY)
                    .init()
                    .forward(q.clone(), Some(r.clone())),
            ),
            &[3.0, 4.0],
        );
        close(
            &float_vec(raw.clone().with_power(2.0).init().forward(q.clone(), None)),
            &[0.0, 25.0, 25.0, 0.0],
        );
        // Normalized: [0, 0] stays 0 (clamped norm), [3, 4] -> [0.6, 0.8], [3, 0] -> [1, 0].
        let d = float_vec(LpDistanceConfig::new().init().forward(q, Some(r)));
        close(&d, &[1.0, (0.16f64 + 0.64).sqrt()]);
    }

    #[test]
    fn zero_distance_has_zero_gradient() {
        let device = Default::default();
        let x =
            Tensor::<Autodiff<B>, 2>::from_floats([[1.0, 2.0], [1.0, 2.0]], &device).require_grad();
        let dist = LpDistanceConfig::new()
            .with_normalize_embeddings(false)
            .init();
        let grads = dist.forward(x.clone(), Some(x.clone())).sum().backward();
        let g = float_vec(x.grad(&grads).unwrap());
        assert!(g.iter().all(|v| v.is_finite() && v.abs() < 1e-6), "{g:?}");
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = LpDistanceConfig::new().with_p(1.0);
        let back: LpDistanceConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.p, 1.0);
    }

    #[test]
    #[should_panic(expected = "LpDistance: query shape [2, 2] and reference shape [1, 3]")]
    fn width_mismatch_panics_with_shapes() {
        let device = Default::default();
        let dist = LpDistanceConfig::new().init();
        let _ = Distance::<B>::forward(
            &dist,
            Tensor::zeros([2, 2], &device),
            Some(Tensor::zeros([1, 3], &device)),
        );
    }
}
