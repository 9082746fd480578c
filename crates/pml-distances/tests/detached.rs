//! `Distance::gram_inputs` against `Distance::forward`: the same matrix, block by block, and
//! `link_rows` and `link_sum` carry the gradient of `Σ slopes ⊙ mat` that autodiff computes
//! through `forward`.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Distribution, Tensor};
use pml_core::{Distance, SumGradient, tensor::float_vec};
use pml_distances::{
    AnyDistance, CosineSimilarityConfig, DistanceConfig, DotProductSimilarityConfig,
    LpDistanceConfig, SNRDistanceConfig,
};

type B = Autodiff<NdArray<f64>>;

fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-9 * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

fn distances() -> Vec<(&'static str, AnyDistance)> {
    let lp = LpDistanceConfig::new;
    vec![
        ("Lp", DistanceConfig::Lp(lp())),
        (
            "Lp raw",
            DistanceConfig::Lp(lp().with_normalize_embeddings(false)),
        ),
        (
            "Lp squared",
            DistanceConfig::Lp(lp().with_normalize_embeddings(false).with_power(2.0)),
        ),
        ("Lp power 3", DistanceConfig::Lp(lp().with_power(3.0))),
        ("Lp power 0.5", DistanceConfig::Lp(lp().with_power(0.5))),
        (
            "Cosine",
            DistanceConfig::Cosine(CosineSimilarityConfig::new()),
        ),
        (
            "Dot raw",
            DistanceConfig::DotProduct(
                DotProductSimilarityConfig::new().with_normalize_embeddings(false),
            ),
        ),
        (
            "Dot squared",
            DistanceConfig::DotProduct(DotProductSimilarityConfig::new().with_power(2.0)),
        ),
    ]
    .into_iter()
    .map(|(name, c)| (name, c.init()))
    .collect()
}

/// How `Σ slopes ⊙ mat` is differentiated.
#[derive(Clone, Copy, Debug)]
enum Route {
    /// Autodiff through `forward`.
    Forward,
    /// Detached blocks, `link_rows`.
    Rows,
    /// Detached blocks, `link_sum`.
    Sum,
}

/// `(mat, ∂/∂query, ∂/∂reference)` of `Σ slopes ⊙ mat` through `route`.
fn matrix_and_gradients(
    d: &AnyDistance,
    query: &Tensor<B, 2>,
    reference: Option<&Tensor<B, 2>>,
    slopes: &Tensor<B, 2>,
    route: Route,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let q = query.clone().require_grad();
    let r = reference.map(|r| r.clone().require_grad());
    let (mat, total) = if let Route::Forward = route {
        let mat = d.forward(q.clone(), r.clone());
        (mat.clone(), (mat * slopes.clone()).sum())
    } else {
        // Blocks of 4, 1 and the rest of the rows.
        let g = d.gram_inputs(q.clone(), r.clone()).expect("a Gram form");
        let n = g.rows();
        let spans = [(0, 4), (4, 1), (5, n - 5)];
        let blocks = spans.map(|(start, len)| g.block(start, len));
        let mat = Tensor::cat(blocks.iter().map(|b| b.mat().clone()).collect(), 0);
        let links = blocks.iter().zip(spans).map(|(b, (start, len))| {
            let s = slopes.clone().narrow(0, start, len);
            match route {
                Route::Sum => b.link_sum(s),
                _ => b.link_rows(s).sum(),
            }
        });
        (mat, Tensor::cat(links.collect(), 0).sum())
    };
    let grads = total.backward();
    let gq = float_vec(q.grad(&grads).expect("query gradient"));
    let gr = r.map_or_else(Vec::new, |r| {
        float_vec(r.grad(&grads).expect("ref gradient"))
    });
    (float_vec(mat), gq, gr)
}

#[test]
fn detached_matrices_carry_the_gradient_of_forward() {
    let device = Default::default();
    let q = Tensor::<B, 2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
    let r = Tensor::<B, 2>::random([7, 4], Distribution::Normal(0.0, 1.0), &device);
    for (name, d) in distances() {
        for reference in [Some(&r), None] {
            let m = reference.map_or(6, |r| r.dims()[0]);
            // Without a reference the diagonal is an exact zero distance.
            let slopes = Tensor::<B, 2>::random([6, m], Distribution::Normal(0.0, 1.0), &device);
            let want = matrix_and_gradients(&d, &q, reference, &slopes, Route::Forward);
            for route in [Route::Rows, Route::Sum] {
                let got = matrix_and_gradients(&d, &q, reference, &slopes, route);
                let case = format!("{name}, reference {}, {route:?}", reference.is_some());
                close(&format!("{case}: matrix"), &got.0, &want.0);
                close(&format!("{case}: query gradient"), &got.1, &want.1);
                close(&format!("{case}: reference gradient"), &got.2, &want.2);
            }
        }
    }
}

#[test]
fn distances_without_a_gram_form_decline() {
    let device = Default::default();
    let q = Tensor::<B, 2>::ones([3, 2], &device);
    let general_p = DistanceConfig::Lp(LpDistanceConfig::new().with_p(1.0)).init();
    let snr = DistanceConfig::Snr(SNRDistanceConfig::new()).init();
    assert!(general_p.gram_inputs(q.clone(), None).is_none());
    assert!(snr.gram_inputs(q.clone(), None).is_none());
    let empty = Tensor::<B, 2>::zeros([0, 2], &device);
    assert!(
        DistanceConfig::lp()
            .init()
            .gram_inputs(q, Some(empty))
            .is_none()
    );
}

#[test]
fn without_a_gram_form_the_matrix_is_differentiated_on_the_graph() {
    let device = Default::default();
    let q = Tensor::<B, 2>::random([4, 3], Distribution::Normal(0.0, 1.0), &device);
    let slopes = Tensor::<B, 2>::random([4, 4], Distribution::Normal(0.0, 1.0), &device);
    let snr = DistanceConfig::Snr(SNRDistanceConfig::new()).init();
    let gradient = |route: Route| {
        let x = q.clone().require_grad();
        let total = match route {
            Route::Forward => (snr.forward(x.clone(), None) * slopes.clone()).sum(),
            Route::Rows => snr
                .detached_matrix(x.clone(), None)
                .link_rows(slopes.clone())
                .sum(),
            Route::Sum => snr
                .detached_matrix(x.clone(), None)
                .link_sum(slopes.clone()),
        };
        float_vec(x.grad(&total.backward()).expect("gradient"))
    };
    let want = gradient(Route::Forward);
    close("SNR gradient, rows", &gradient(Route::Rows), &want);
    close("SNR gradient, sum", &gradient(Route::Sum), &want);
}

#[test]
fn upper_tiles_weighted_stand_for_the_whole_matrix() {
    let device = Default::default();
    let n = 11;
    let x = Tensor::<B, 2>::random([n, 4], Distribution::Normal(0.0, 1.0), &device);
    let s = Tensor::<B, 2>::random([n, n], Distribution::Normal(0.0, 1.0), &device);
    let slopes = s.clone() + s.transpose();
    for (name, d) in distances() {
        let want = matrix_and_gradients(&d, &x, None, &slopes, Route::Forward);
        let want_total: f64 = want
            .0
            .iter()
            .zip(float_vec(slopes.clone()))
            .map(|(a, b)| a * b)
            .sum();
        // 2 threads, tiles of at most 6 entries: several tiles of weight 2 per row block.
        for entries in [6, 1 << 20] {
            let q = x.clone().require_grad();
            let g = d.gram_inputs(q.clone(), None).expect("a Gram form");
            let tiles = g.map_upper_tiles(entries, 2, |rows, cols, weight, matrix| {
                let s = slopes.clone().slice([rows, cols]).mul_scalar(weight);
                let total = (matrix.mat().clone() * s.clone()).sum();
                (total, matrix.into_link().sum_gradient(s))
            });
            let (totals, parts): (Vec<_>, Vec<_>) = tiles.into_iter().unzip();
            let total: f64 = totals.into_iter().map(|t| float_vec(t)[0]).sum();
            let grads = SumGradient::attach(parts).backward();
            let gx = float_vec(q.grad(&grads).expect("gradient"));
            let case = format!("{name}, {entries} entries");
            close(&format!("{case}: total"), &[total], &[want_total]);
            close(&format!("{case}: gradient"), &gx, &want.1);
        }
    }
}
