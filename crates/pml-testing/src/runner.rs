//! Runs cases and compares with the golden values.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::{Bool, Int, Tensor, TensorData, backend::AutodiffBackend};
use pml_core::{
    Distance, LossInput, MetricLoss, PmlError, Reference,
    config::Spec,
    tensor::{float_vec, int_tensor},
};
use pml_distances::DistanceConfig;
use pml_losses::{AnyLoss, LossConfig, regularizers::RegularizerConfig};
use pml_reducers::ReducerConfig;
use serde_json::Value;

use crate::case::{Case, field, float_tensor, indices_tuple, int_list, raw_tensor};

/// The verdict on one case.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Values (and gradients) within tolerance, or a refused configuration that PML refuses.
    Pass,
    /// The port differs from PML, crashed, or accepted a configuration PML refuses.
    Fail(String),
    /// The case needs a PML class the port does not implement yet.
    NotImplemented(String),
}

/// Verdicts on a set of cases.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Ids of the passing cases.
    pub passed: Vec<String>,
    /// `(id, what differed)` of the failing cases.
    pub failed: Vec<(String, String)>,
    /// `(id, PML class name)` of the cases that need unimplemented classes.
    pub not_implemented: Vec<(String, String)>,
}

impl Report {
    /// One `FAIL <id>: <reason>` line per failing or unimplemented case, then
    /// `N passed, M failed` (unimplemented cases count as failed, FORMAT.md).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (id, why) in &self.failed {
            out += &format!("FAIL {id}: {why}\n");
        }
        for (id, name) in &self.not_implemented {
            out += &format!("FAIL {id}: not implemented: {name}\n");
        }
        out += &format!(
            "{} passed, {} failed\n",
            self.passed.len(),
            self.failed.len() + self.not_implemented.len()
        );
        out
    }
}

/// Runs every case whose id contains `filter` (all with `None`) on `device`.
pub fn run_cases<B: AutodiffBackend>(
    cases: &[Case],
    filter: Option<&str>,
    device: &B::Device,
) -> Report {
    let mut report = Report::default();
    for case in cases
        .iter()
        .filter(|c| filter.is_none_or(|f| c.id.contains(f)))
    {
        match run_case::<B>(case, device) {
            Outcome::Pass => report.passed.push(case.id.clone()),
            Outcome::Fail(why) => report.failed.push((case.id.clone(), why)),
            Outcome::NotImplemented(name) => report.not_implemented.push((case.id.clone(), name)),
        }
    }
    report
}

/// Why a case did not pass (shared by the per-kind runners).
pub(crate) enum Failure {
    /// Needs a PML class the port lacks.
    NotImplemented(String),
    /// Differs from PML.
    Mismatch(String),
}

impl From<PmlError> for Failure {
    fn from(e: PmlError) -> Self {
        match e {
            PmlError::NotImplemented(name) => Self::NotImplemented(name),
            other => {
                let text = other.to_string();
                // Nested specs report through serde: keep the class name.
                match text.split_once("not implemented: ") {
                    Some((_, name)) => Self::NotImplemented(name.to_string()),
                    None => Self::Mismatch(text),
                }
            }
        }
    }
}

pub(crate) fn mismatch(msg: impl Into<String>) -> Failure {
    Failure::Mismatch(msg.into())
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs one case. Panics inside the port are caught and reported as failures.
pub fn run_case<B: AutodiffBackend>(case: &Case, device: &B::Device) -> Outcome {
    let result = catch_unwind(AssertUnwindSafe(|| match case.kind.as_str() {
        "distance" => distance_case::<B>(case, device),
        "loss" => loss_case::<B>(case, device),
        "miner" => crate::miners::miner_case::<B>(case, device),
        "accuracy" => crate::accuracy::accuracy_case::<B>(case, device),
        other => Err(mismatch(format!("unknown case kind `{other}`"))),
    }));
    match result {
        Ok(Ok(())) => Outcome::Pass,
        Ok(Err(Failure::NotImplemented(name))) => Outcome::NotImplemented(name),
        Ok(Err(Failure::Mismatch(why))) => Outcome::Fail(why),
        Err(payload) => Outcome::Fail(format!("panicked: {}", panic_message(payload))),
    }
}

/// Whether `name` is a PML class that no registry of the port (distances, reducers,
/// regularizers, losses, miners) can build.
pub fn is_unimplemented(name: &str) -> bool {
    let spec = Spec {
        name: name.to_string(),
        params: Value::Object(Default::default()),
    };
    let unknown = |e: PmlError| matches!(e, PmlError::NotImplemented(_));
    DistanceConfig::from_spec(&spec).err().is_some_and(unknown)
        && ReducerConfig::from_spec(&spec).err().is_some_and(unknown)
        && RegularizerConfig::from_spec(&spec)
            .err()
            .is_some_and(unknown)
        && LossConfig::from_spec(&spec).err().is_some_and(unknown)
        && pml_miners::MinerConfig::from_spec(&spec)
            .err()
            .is_some_and(unknown)
}

pub(crate) fn parse_spec(spec: &Value) -> Result<Spec, Failure> {
    serde_json::from_value(spec.clone()).map_err(|e| mismatch(format!("bad spec: {e}")))
}

pub(crate) fn tol(case: &Case, key: &str) -> Result<f64, Failure> {
    case.tolerance
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| mismatch(format!("tolerance has no `{key}`")))
}

/// `‖got − exp‖ / ‖exp‖ ≤ rtol`, or `max |got| ≤ atol` when `‖exp‖ = 0`.
pub(crate) fn compare(
    what: &str,
    got: &[f64],
    exp: &[f64],
    rtol: f64,
    atol: f64,
) -> Result<(), Failure> {
    if got.len() != exp.len() {
        return Err(mismatch(format!(
            "{what}: {} values, expected {}",
            got.len(),
            exp.len()
        )));
    }
    let exp_norm = exp.iter().map(|x| x * x).sum::<f64>().sqrt();
    if exp_norm == 0.0 {
        let max = got.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        if max.is_nan() || max > atol {
            return Err(mismatch(format!(
                "{what}: expected zeros, got max |x| = {max:.3e}"
            )));
        }
        return Ok(());
    }
    let diff = got
        .iter()
        .zip(exp)
        .map(|(g, e)| (g - e) * (g - e))
        .sum::<f64>()
        .sqrt();
    let rel = diff / exp_norm;
    if rel.is_nan() || rel > rtol {
        return Err(mismatch(format!(
            "{what}: relative error {rel:.3e} > {rtol:.0e}"
        )));
    }
    Ok(())
}

pub(crate) fn expected_values(name: &str, value: &Value) -> Result<Vec<f64>, Failure> {
    let (_, data) = raw_tensor(name, value)?;
    Ok(data.into_iter().map(f64::from).collect())
}

fn distance_case<B: AutodiffBackend>(case: &Case, device: &B::Device) -> Result<(), Failure> {
    let distance = DistanceConfig::from_spec(&parse_spec(&case.spec)?)?.init();
    let rtol = tol(case, "rtol")?;
    let atol = tol(case, "atol").unwrap_or(0.0);
    let query = float_tensor::<B, 2>("query", field(&case.inputs, "query")?, device)?;
    let reference = float_tensor::<B, 2>("reference", field(&case.inputs, "reference")?, device)?;
    let got = float_vec(distance.forward(query.clone(), Some(reference)));
    let exp = expected_values("matrix", field(&case.expected, "matrix")?)?;
    compare("matrix", &got, &exp, rtol, atol)?;
    let got = float_vec(distance.forward(query, None));
    let exp = expected_values("self_matrix", field(&case.expected, "self_matrix")?)?;
    compare("self_matrix", &got, &exp, rtol, atol)
}

fn loss_case<B: AutodiffBackend>(case: &Case, device: &B::Device) -> Result<(), Failure> {
    // With a top-level miner, each call mines on its inputs first (FORMAT.md).
    let miner = match &case.miner {
        Some(spec) => Some(crate::miners::build_miner(spec)?),
        None => None,
    };
    let config = LossConfig::from_spec(&parse_spec(&case.spec)?);
    if let Some(pml_error) = &case.error {
        return expect_refusal::<B>(config, pml_error, device);
    }
    let mut loss = config?.try_init::<B>(device)?;
    for (name, value) in &case.parameters {
        let (shape, data) = raw_tensor(name, value)?;
        loss = loss.load_parameter(name, &shape, data)?;
    }
    let rtol = tol(case, "rtol")?;
    let atol = tol(case, "atol")?;
    for (i, call) in case.calls.iter().enumerate() {
        loss_call::<B>(&loss, miner.as_ref(), call, rtol, atol, device).map_err(|f| match f {
            Failure::Mismatch(why) => mismatch(format!("call {i}: {why}")),
            other => other,
        })?;
    }
    Ok(())
}

/// PML refused this spec: the port must refuse it too, at construction or at the first call.
fn expect_refusal<B: AutodiffBackend>(
    config: Result<LossConfig, PmlError>,
    pml_error: &str,
    device: &B::Device,
) -> Result<(), Failure> {
    let loss = match config {
        Err(PmlError::NotImplemented(name)) => return Err(Failure::NotImplemented(name)),
        Err(_) => return Ok(()),
        Ok(c) => match c.try_init::<B>(device) {
            Err(_) => return Ok(()),
            Ok(loss) => loss,
        },
    };
    // Accepted at construction: the first call must refuse.
    let embeddings = Tensor::<B, 2>::ones([6, 4], device).require_grad();
    let labels = int_tensor::<B>(&[0, 0, 1, 1, 2, 2], device);
    let call = catch_unwind(AssertUnwindSafe(|| {
        loss.try_forward(LossInput::new(embeddings, labels))
    }));
    match call {
        Ok(Ok(_)) => Err(mismatch(format!(
            "PML refuses this configuration ({pml_error}) but the port accepted it"
        ))),
        _ => Ok(()),
    }
}

fn loss_call<B: AutodiffBackend>(
    loss: &AnyLoss<B>,
    miner: Option<&pml_miners::AnyMiner>,
    call: &Value,
    rtol: f64,
    atol: f64,
    device: &B::Device,
) -> Result<(), Failure> {
    let inputs = field(call, "inputs")?;
    let expected = field(call, "expected")?;
    let labels = |key: &str| -> Result<Option<Tensor<B, 1, Int>>, Failure> {
        match inputs.get(key).filter(|v| !v.is_null()) {
            Some(v) => Ok(Some(int_list::<B>(key, v, device)?)),
            None => Ok(None),
        }
    };
    let enqueue_mask = match inputs.get("enqueue_mask").filter(|v| !v.is_null()) {
        Some(v) => {
            let mask: Vec<bool> = serde_json::from_value(v.clone())
                .map_err(|e| mismatch(format!("enqueue_mask must be a list of booleans: {e}")))?;
            let n = mask.len();
            Some(Tensor::<B, 1, Bool>::from_data(
                TensorData::new(mask, [n]),
                device,
            ))
        }
        None => None,
    };
    let embeddings =
        float_tensor::<B, 2>("embeddings", field(inputs, "embeddings")?, device)?.require_grad();
    let ref_emb = match inputs.get("ref_emb").filter(|v| !v.is_null()) {
        Some(v) => Some(float_tensor::<B, 2>("ref_emb", v, device)?.require_grad()),
        None => None,
    };
    let mut input = LossInput {
        embeddings: embeddings.clone(),
        labels: labels("labels")?,
        indices_tuple: match inputs.get("indices_tuple").filter(|v| !v.is_null()) {
            Some(v) => Some(indices_tuple::<B>(v, device)?),
            None => None,
        },
        reference: match &ref_emb {
            Some(r) => Some(Reference {
                embeddings: r.clone(),
                labels: labels("ref_labels")?,
            }),
            None => None,
        },
    };
    input.check_shapes()?;
    if let Some(miner) = miner {
        crate::miners::mine_for_loss(miner, &mut input);
    }
    let value = match (enqueue_mask, loss) {
        (None, loss) => loss.forward(input),
        (Some(mask), AnyLoss::CrossBatchMemory(cbm)) => cbm.forward_with_enqueue_mask(input, mask),
        (Some(_), _) => return Err(mismatch("enqueue_mask is only for CrossBatchMemory")),
    };
    let got = float_vec(value.clone())[0];
    let exp = field(expected, "loss")?
        .as_f64()
        .ok_or_else(|| mismatch("expected.loss is not a number"))?;
    let err = (got - exp).abs() / exp.abs().max(1.0);
    if err.is_nan() || err > rtol {
        return Err(mismatch(format!(
            "loss {got:.6e}, expected {exp:.6e} (relative error {err:.3e} > {rtol:.0e})"
        )));
    }
    if let Some(exp) = expected.get("logits") {
        let got = loss
            .logits(embeddings.clone().detach())
            .ok_or_else(|| mismatch("logits expected, but this loss has no get_logits"))?;
        let exp = expected_values("logits", exp)?;
        compare("logits", &float_vec(got), &exp, rtol, atol)?;
    }
    let grads = value.backward();
    let Some(expected_grads) = expected.get("grad").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, exp) in expected_grads {
        let tensor = match name.as_str() {
            "embeddings" => embeddings.clone(),
            "ref_emb" => ref_emb
                .clone()
                .ok_or_else(|| mismatch("gradient for ref_emb expected but no ref_emb given"))?,
            other => {
                let exp = expected_values(name, exp)?;
                let got = loss
                    .parameter_gradient(other, &grads)
                    .unwrap_or_else(|| vec![0.0; exp.len()]);
                compare(&format!("grad[{name}]"), &got, &exp, rtol, atol)?;
                continue;
            }
        };
        let exp = expected_values(name, exp)?;
        let got = match tensor.grad(&grads) {
            Some(g) => float_vec(g),
            // Not in the graph: the gradient is zero.
            None => vec![0.0; exp.len()],
        };
        compare(&format!("grad[{name}]"), &got, &exp, rtol, atol)?;
    }
    Ok(())
}
