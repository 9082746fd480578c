//! Distance rows: every distance (and its common options) between empty, one-row, zero, tied,
//! large, non-finite and mismatched sets.

use burn::tensor::{Tensor, TensorData};
use pml_core::{Distance, PmlError, tensor::float_vec};
use pml_distances::{AnyDistance, DistanceConfig};
use serde_json::json;

use crate::{Backend, Expect, Report, batch::values};

type Tb = Backend;

fn distances() -> Vec<(String, Result<AnyDistance, PmlError>)> {
    [
        json!({"name": "LpDistance", "params": {}}),
        json!({"name": "LpDistance", "params": {"normalize_embeddings": false}}),
        json!({"name": "LpDistance", "params": {"p": 1.0}}),
        json!({"name": "LpDistance", "params": {"power": 2.0, "normalize_embeddings": false}}),
        json!({"name": "LpDistance", "params": {"p": 3.0, "normalize_embeddings": false}}),
        json!({"name": "CosineSimilarity", "params": {}}),
        json!({"name": "DotProductSimilarity", "params": {}}),
        json!({"name": "SNRDistance", "params": {}}),
    ]
    .into_iter()
    .map(|spec| {
        let name = format!("{}{}", spec["name"].as_str().unwrap_or("?"), spec["params"]);
        let built = serde_json::from_value::<DistanceConfig>(spec)
            .map_err(|e| PmlError::invalid_input("spec", e.to_string()))
            .and_then(|c| c.validate().map(|()| c.init()));
        (name, built)
    })
    .collect()
}

/// A query and an optional reference, each `(rows, width, values)`.
struct Pair {
    name: &'static str,
    query: (usize, usize, Vec<f32>),
    reference: Option<(usize, usize, Vec<f32>)>,
    expect: Expect,
}

fn set(rows: usize, width: usize, f: impl Fn(usize, f32) -> f32) -> (usize, usize, Vec<f32>) {
    let v = values(rows * width, 17)
        .iter()
        .enumerate()
        .map(|(i, &v)| f(i, v))
        .collect();
    (rows, width, v)
}

fn pairs() -> Vec<Pair> {
    let plain = |_: usize, v: f32| v;
    let pair = |name, query, reference| Pair {
        name,
        query,
        reference,
        expect: Expect::Data,
    };
    vec![
        pair("an empty query", set(0, 4, plain), None),
        pair(
            "an empty query and reference",
            set(0, 4, plain),
            Some(set(0, 4, plain)),
        ),
        pair(
            "an empty reference",
            set(3, 4, plain),
            Some(set(0, 4, plain)),
        ),
        pair("a query of one row", set(1, 4, plain), None),
        pair(
            "a reference of one row",
            set(5, 4, plain),
            Some(set(1, 4, plain)),
        ),
        pair("zero vectors", set(4, 4, |_, _| 0.0), None),
        pair("equal rows (ties)", set(4, 4, |i, _| (i % 4) as f32), None),
        pair("large values (1e15)", set(4, 4, |_, v| v * 1e15), None),
        pair("tiny values (1e-30)", set(4, 4, |_, v| v * 1e-30), None),
        pair("width zero", set(3, 0, plain), Some(set(2, 0, plain))),
        pair(
            "constant rows",
            set(4, 4, |i, _| (i / 4) as f32 + 1.0),
            None,
        ),
        pair(
            "NaN in the query",
            set(3, 4, |i, v| if i == 1 { f32::NAN } else { v }),
            None,
        ),
        pair(
            "inf in the reference",
            set(3, 4, plain),
            Some(set(2, 4, |i, v| if i == 0 { f32::INFINITY } else { v })),
        ),
        Pair {
            expect: Expect::Contract(&["width", "widths"]),
            ..pair(
                "widths that differ",
                set(3, 4, plain),
                Some(set(2, 5, plain)),
            )
        },
    ]
}

fn tensor((rows, width, v): &(usize, usize, Vec<f32>)) -> Tensor<Tb, 2> {
    Tensor::from_data(
        TensorData::new(v.clone(), [*rows, *width]),
        &Default::default(),
    )
}

/// SNRDistance divides by each query row's variance, as PML does: NaN for constant rows (zero
/// vectors, zero width) is PML's result.
fn pml_nan(distance: &AnyDistance, pair: &Pair) -> bool {
    matches!(distance, AnyDistance::Snr(_))
        && matches!(pair.name, "zero vectors" | "width zero" | "constant rows")
}

fn call(distance: &AnyDistance, pair: &Pair) -> Result<Result<(), String>, PmlError> {
    let finite = pair
        .query
        .2
        .iter()
        .chain(pair.reference.iter().flat_map(|r| &r.2))
        .all(|v| v.is_finite());
    let out = distance.forward(tensor(&pair.query), pair.reference.as_ref().map(tensor));
    let expected = [
        pair.query.0,
        pair.reference.as_ref().map_or(pair.query.0, |r| r.0),
    ];
    if out.dims() != expected {
        return Ok(Err(format!(
            "shape {:?}, expected {expected:?}",
            out.dims()
        )));
    }
    let bad = float_vec(out).into_iter().find(|v| !v.is_finite());
    Ok(match bad {
        // Large but finite inputs may overflow f32 to infinity; NaN never.
        Some(v) if finite && v.is_nan() && !pml_nan(distance, pair) => {
            Err("NaN distance from finite inputs".into())
        }
        _ => Ok(()),
    })
}

pub(crate) fn run(report: &mut Report) {
    for (name, distance) in distances() {
        let distance = match distance {
            Ok(d) => d,
            Err(e) => {
                report.check(format!("{name}::init"), "its spec", Expect::Data, || Err(e));
                continue;
            }
        };
        for pair in pairs() {
            report.check(format!("{name}::forward"), pair.name, pair.expect, || {
                call(&distance, &pair)
            });
        }
    }
}
