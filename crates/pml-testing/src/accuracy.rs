//! Accuracy cases (`kind = "accuracy"`): PML's `AccuracyCalculator` on given embeddings.

use burn::tensor::backend::Backend;
use pml_core::config::Spec;
use pml_eval::{AccuracyCalculatorConfig, AccuracyInput, Labels, MetricValue};
use serde_json::Value;

use crate::{
    case::{Case, field, float_tensor},
    runner::{Failure, mismatch, tol},
};

fn labels(name: &str, value: &Value) -> Result<Labels, Failure> {
    let v: Vec<i64> = serde_json::from_value(value.clone())
        .map_err(|e| mismatch(format!("{name} must be a list of integers: {e}")))?;
    Ok(Labels::new(v))
}

/// Builds the calculator from `spec` (`include`, `exclude`, `k`, `avg_of_avgs`,
/// `return_per_class`), runs it on `inputs` and compares every expected metric:
/// `|got − exp| ≤ tolerance.atol` (per class with `return_per_class`).
pub(crate) fn accuracy_case<B: Backend>(case: &Case, device: &B::Device) -> Result<(), Failure> {
    let spec = Spec {
        name: "AccuracyCalculator".into(),
        params: case.spec.clone(),
    };
    // The kNN of a parity case is small: no progress bar in the report.
    let defaults =
        AccuracyCalculatorConfig::new().with_knn(pml_eval::KnnConfig::new().with_progress(false));
    let config = spec.build(defaults)?;
    let calc = config.try_init()?;
    let atol = tol(case, "atol")?;
    let inputs = &case.inputs;
    let query = float_tensor::<B, 2>("query", field(inputs, "query")?, device)?;
    let mut input = AccuracyInput::new(
        query,
        labels("query_labels", field(inputs, "query_labels")?)?,
    );
    if let Some(reference) = inputs.get("reference").filter(|v| !v.is_null()) {
        let reference = float_tensor::<B, 2>("reference", reference, device)?;
        let reference_labels = labels("reference_labels", field(inputs, "reference_labels")?)?;
        input = input.with_reference(reference, reference_labels);
    }
    input.ref_includes_query = inputs
        .get("ref_includes_query")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let got = calc.get_accuracy(input)?;
    let expected = case
        .expected
        .as_object()
        .ok_or_else(|| mismatch("expected is not an object"))?;
    for (name, exp) in expected {
        let value = got
            .get(name)
            .ok_or_else(|| mismatch(format!("metric {name} was not computed")))?;
        let exp: Vec<f64> = match exp {
            Value::Array(_) => serde_json::from_value(exp.clone())
                .map_err(|e| mismatch(format!("expected.{name}: {e}")))?,
            other => vec![
                other
                    .as_f64()
                    .ok_or_else(|| mismatch(format!("expected.{name} is not a number")))?,
            ],
        };
        let got = match value {
            MetricValue::Scalar(x) => vec![*x],
            MetricValue::PerClass(v) => v.clone(),
        };
        if got.len() != exp.len() {
            return Err(mismatch(format!(
                "{name}: {} values, expected {}",
                got.len(),
                exp.len()
            )));
        }
        for (i, (g, e)) in got.iter().zip(&exp).enumerate() {
            let both_nan = g.is_nan() && e.is_nan();
            let diff = (g - e).abs();
            if !both_nan && (diff.is_nan() || diff > atol) {
                let at = if exp.len() > 1 {
                    format!("[{i}]")
                } else {
                    String::new()
                };
                return Err(mismatch(format!(
                    "{name}{at}: got {g:.6}, expected {e:.6} (atol {atol})"
                )));
            }
        }
    }
    Ok(())
}
