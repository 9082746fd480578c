//! Reducer rows: every reducer on loss terms of every reduction type that are empty, hold a
//! NaN, point past the batch, or come with labels the reducer cannot use.

use burn::tensor::{Int, Tensor, TensorData};
use pml_core::{
    LossTerm, LossTerms, PmlError, ReduceContext, Reducer, ReductionType, tensor::float_vec,
    tensor::int_tensor,
};
use pml_reducers::{AnyReducer, ReducerConfig};
use serde_json::json;

use crate::{Backend, Expect, Report, batch::values};

/// Rows of the batch the terms index into.
const ROWS: usize = 6;

type Tb = Backend;

fn reducers() -> Vec<(String, Result<AnyReducer, PmlError>)> {
    [
        json!({"name": "MeanReducer"}),
        json!({"name": "SumReducer"}),
        json!({"name": "AvgNonZeroReducer"}),
        json!({"name": "ThresholdReducer", "params": {"low": 0.1}}),
        json!({"name": "ThresholdReducer", "params": {"high": 0.5}}),
        json!({"name": "ClassWeightedReducer", "params": {"weights": [1.0, 2.0, 3.0]}}),
        json!({"name": "PerAnchorReducer", "params": {}}),
        json!({"name": "DivisorReducer"}),
        json!({"name": "DoNothingReducer"}),
        json!({"name": "MultipleReducers", "params": {"reducers": {"loss": {"name": "SumReducer"}}}}),
    ]
    .into_iter()
    .map(|spec| {
        let name = format!("{}{}", spec["name"].as_str().unwrap_or("?"), spec["params"]);
        let built = serde_json::from_value::<ReducerConfig>(spec)
            .map_err(|e| PmlError::invalid_input("spec", e.to_string()))
            .and_then(|c| c.validate().map(|()| c.init()));
        (name, built)
    })
    .collect()
}

/// One term of `kind` over `indices` with these loss values.
fn term(kind: ReductionType, losses: &[f32], indices: &[i64]) -> LossTerm<Tb> {
    let device = Default::default();
    let l = Tensor::<Tb, 1>::from_data(TensorData::new(losses.to_vec(), [losses.len()]), &device)
        .require_grad();
    let i = || int_tensor::<Tb>(indices, &device);
    let j = || -> Tensor<Tb, 1, Int> {
        int_tensor(
            &indices.iter().map(|x| (x + 1) % 6).collect::<Vec<_>>(),
            &device,
        )
    };
    let term = match kind {
        ReductionType::Element => LossTerm::element("loss", l, i()),
        ReductionType::PosPair => LossTerm::pos_pair("loss", l, i(), j()),
        ReductionType::NegPair => LossTerm::neg_pair("loss", l, i(), j()),
        ReductionType::Triplet => LossTerm::triplet("loss", l, i(), j(), j()),
        ReductionType::AlreadyReduced => LossTerm::already_reduced("loss", l),
    };
    // DivisorReducer divides by the term's divisor: give every term one.
    term.with_divisor(Tensor::from_data(
        TensorData::new(vec![2.0f32], [1]),
        &device,
    ))
}

struct TermCase {
    name: &'static str,
    losses: Vec<f32>,
    indices: Vec<i64>,
    labels: Option<Vec<i64>>,
    expect: Expect,
    finite: bool,
}

/// The bad terms. Indices past the batch are not tried: terms come from the losses, which index
/// their own batch (a hand-built `LossTerm` must index into the batch it is reduced with).
fn cases() -> Vec<TermCase> {
    let labels = Some(vec![0, 0, 1, 1, 2, 2]);
    let case = |name, losses: Vec<f32>, indices: Vec<i64>| TermCase {
        name,
        finite: losses.iter().all(|l| l.is_finite()),
        losses,
        indices,
        labels: labels.clone(),
        expect: Expect::Data,
    };
    vec![
        case("no losses", vec![], vec![]),
        case("one loss", vec![0.7], vec![3]),
        case("all losses zero", vec![0.0; 4], vec![0, 1, 2, 3]),
        case("negative losses", vec![-1.0, -0.5, 0.2], vec![0, 2, 4]),
        case("a NaN loss", vec![0.3, f32::NAN], vec![0, 1]),
        case("an infinite loss", vec![f32::INFINITY, 0.1], vec![0, 1]),
        TermCase {
            labels: Some(vec![0, 0, 1, 1, 7, 7]),
            expect: Expect::Contract(&["labels"]),
            ..case("labels past the class weights", vec![0.5, 0.25], vec![1, 4])
        },
        TermCase {
            labels: Some(vec![0, 0, -1, 1, 2, 2]),
            expect: Expect::Contract(&["labels"]),
            ..case("a negative label", vec![0.5, 0.25], vec![1, 2])
        },
        TermCase {
            labels: None,
            expect: Expect::Contract(&["labels"]),
            ..case("no labels", vec![0.5, 0.25], vec![1, 2])
        },
    ]
}

fn reduce(
    reducer: &AnyReducer,
    kind: ReductionType,
    case: &TermCase,
) -> Result<Result<(), String>, PmlError> {
    reducer.check_terms("matrix", &[("loss", kind)])?;
    let device = Default::default();
    let embeddings =
        Tensor::<Tb, 2>::from_data(TensorData::new(values(ROWS * 4, 13), [ROWS, 4]), &device)
            .require_grad();
    let labels = case.labels.as_ref().map(|l| int_tensor::<Tb>(l, &device));
    let ctx = ReduceContext::new(embeddings, labels);
    let terms = LossTerms::new().with(term(kind, &case.losses, &case.indices));
    let out = reducer.reduce(&terms, &ctx);
    if out.dims() != [1] {
        return Ok(Err(format!(
            "reduced to shape {:?}, expected [1]",
            out.dims()
        )));
    }
    let value = float_vec(out)[0];
    Ok(if case.finite && !value.is_finite() {
        Err(format!("non-finite {value} from finite losses"))
    } else {
        Ok(())
    })
}

pub(crate) fn run(report: &mut Report) {
    let kinds = [
        ReductionType::Element,
        ReductionType::PosPair,
        ReductionType::NegPair,
        ReductionType::Triplet,
        ReductionType::AlreadyReduced,
    ];
    for (name, reducer) in reducers() {
        let reducer = match reducer {
            Ok(r) => r,
            Err(e) => {
                report.check(format!("{name}::init"), "its spec", Expect::Data, || Err(e));
                continue;
            }
        };
        // DoNothingReducer never reduces: calling `reduce` with losses is the contract
        // violation its panic names.
        let does_nothing = name.starts_with("DoNothingReducer");
        for kind in kinds {
            for case in cases() {
                let expect = if does_nothing && kind != ReductionType::AlreadyReduced {
                    Expect::Contract(&["DoNothingReducer"])
                } else {
                    case.expect
                };
                report.check(
                    format!("{name}::reduce({})", kind.pml_name()),
                    case.name,
                    expect,
                    || reduce(&reducer, kind, &case),
                );
            }
        }
    }
}
