//! Case files: `{"generator": ..., "seed": N, "cases": [CASE, ...]}`.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use pml_core::{IndicesTuple, PmlError, tensor::int_tensor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One golden case, as written by the generator; kind-specific parts stay JSON until used.
#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    /// A unique name, for reports only (objects are built from `spec`, never from the id).
    pub id: String,
    /// `"distance"`, `"loss"`, `"miner"` or `"accuracy"`.
    pub kind: String,
    /// The PML class and its arguments.
    #[serde(default)]
    pub spec: Value,
    /// Initial values of trainable tensors, by PML attribute name.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Loss calls, in order, on one loss object.
    #[serde(default)]
    pub calls: Vec<Value>,
    /// Inputs of distance, miner and accuracy cases.
    #[serde(default)]
    pub inputs: Value,
    /// Expected outputs of distance, miner and accuracy cases.
    #[serde(default)]
    pub expected: Value,
    /// `rtol`, `atol`, `min_jaccard`, `unordered_pairs`.
    #[serde(default)]
    pub tolerance: Value,
    /// PML refused this spec with this error.
    #[serde(default)]
    pub error: Option<String>,
    /// A miner whose output feeds the loss.
    #[serde(default)]
    pub miner: Option<Value>,
}

#[derive(Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

/// Loads every `*.json` case file of `dir`, in file-name order.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>, PmlError> {
    let file_err = |path: &Path, reason: String| PmlError::File {
        path: path.display().to_string(),
        reason,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| file_err(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(file_err(dir, "no *.json case files".into()));
    }
    let mut cases = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e.to_string()))?;
        cases.extend(parse_cases(&text, &path.display().to_string())?);
    }
    Ok(cases)
}

/// Parses the text of one case file; `name` names it in errors.
///
/// # Errors
/// [`PmlError::File`] when the text is not a case file.
pub fn parse_cases(text: &str, name: &str) -> Result<Vec<Case>, PmlError> {
    let file: CaseFile = serde_json::from_str(text).map_err(|e| PmlError::File {
        path: name.to_string(),
        reason: e.to_string(),
    })?;
    Ok(file.cases)
}

/// A field of a JSON object.
pub(crate) fn field<'a>(value: &'a Value, name: &str) -> Result<&'a Value, PmlError> {
    value
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| PmlError::invalid_input(name, "missing"))
}

/// A float tensor `{"shape": [...], "data": [...]}` of rank `D`.
pub(crate) fn float_tensor<B: Backend, const D: usize>(
    name: &str,
    value: &Value,
    device: &B::Device,
) -> Result<Tensor<B, D>, PmlError> {
    let (shape, data) = raw_tensor(name, value)?;
    if shape.len() != D {
        return Err(PmlError::invalid_input(
            name,
            format!("must be {D}-D, got shape {shape:?}"),
        ));
    }
    Ok(Tensor::from_data(TensorData::new(data, shape), device))
}

/// The shape and row-major data of a tensor value `{"shape": [...], "data": [...]}`.
///
/// # Errors
/// [`PmlError::InvalidInput`] naming `name` when a field is missing or malformed, or the shape
/// (whose product may not overflow) does not match the number of values.
pub fn raw_tensor(name: &str, value: &Value) -> Result<(Vec<usize>, Vec<f32>), PmlError> {
    let shape: Vec<usize> = serde_json::from_value(field(value, "shape")?.clone())
        .map_err(|e| PmlError::invalid_input(name, format!("bad shape: {e}")))?;
    let data: Vec<f64> = serde_json::from_value(field(value, "data")?.clone())
        .map_err(|e| PmlError::invalid_input(name, format!("bad data: {e}")))?;
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if numel != Some(data.len()) {
        let needs = numel.map_or_else(|| "more than usize::MAX".into(), |n| n.to_string());
        return Err(PmlError::invalid_input(
            name,
            format!("shape {shape:?} needs {needs} values, got {}", data.len()),
        ));
    }
    Ok((shape, data.into_iter().map(|x| x as f32).collect()))
}

/// An integer list as a 1-D Int tensor.
pub(crate) fn int_list<B: Backend>(
    name: &str,
    value: &Value,
    device: &B::Device,
) -> Result<Tensor<B, 1, Int>, PmlError> {
    let v: Vec<i64> = serde_json::from_value(value.clone())
        .map_err(|e| PmlError::invalid_input(name, format!("must be a list of integers: {e}")))?;
    Ok(int_tensor(&v, device))
}

/// `{"pairs": [a1, p, a2, n]}` or `{"triplets": [a, p, n]}`.
pub(crate) fn indices_tuple<B: Backend>(
    value: &Value,
    device: &B::Device,
) -> Result<IndicesTuple<B>, PmlError> {
    let lists = |key: &str, k: usize| -> Result<Option<Vec<Vec<i64>>>, PmlError> {
        let Some(v) = value.get(key) else {
            return Ok(None);
        };
        let lists: Vec<Vec<i64>> = serde_json::from_value(v.clone())
            .map_err(|e| PmlError::invalid_input("indices_tuple", e.to_string()))?;
        if lists.len() != k {
            return Err(PmlError::invalid_input(
                "indices_tuple",
                format!("`{key}` needs {k} lists, got {}", lists.len()),
            ));
        }
        Ok(Some(lists))
    };
    if let Some(l) = lists("pairs", 4)? {
        return Ok(IndicesTuple::pairs_from_slices(
            &l[0], &l[1], &l[2], &l[3], device,
        ));
    }
    if let Some(l) = lists("triplets", 3)? {
        return Ok(IndicesTuple::triplets_from_slices(
            &l[0], &l[1], &l[2], device,
        ));
    }
    Err(PmlError::invalid_input(
        "indices_tuple",
        "needs `pairs` or `triplets`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use serde_json::json;

    #[test]
    fn tensors_of_the_wrong_rank_or_size_are_named_errors() {
        let device = Default::default();
        let one_d = json!({"shape": [3], "data": [1.0, 2.0, 3.0]});
        let err = float_tensor::<NdArray, 2>("embeddings", &one_d, &device).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input `embeddings`: must be 2-D, got shape [3]"
        );
        let huge = json!({"shape": [4294967296u64, 4294967296u64], "data": []});
        let err = float_tensor::<NdArray, 2>("embeddings", &huge, &device).unwrap_err();
        assert!(
            err.to_string()
                .contains("needs more than usize::MAX values, got 0")
        );
        let short = json!({"shape": [2, 2], "data": [1.0]});
        let err = float_tensor::<NdArray, 2>("ref_emb", &short, &device).unwrap_err();
        assert!(
            err.to_string()
                .contains("`ref_emb`: shape [2, 2] needs 4 values, got 1")
        );
    }
}
