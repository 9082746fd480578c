//! Miner cases (FORMAT.md, `kind = "miner"`): mine with the case's spec and compare the tuples
//! with PML's as sets, by Jaccard similarity; and mining before a loss call for loss cases
//! with a top-level `miner` spec.

use std::collections::BTreeSet;

use burn::tensor::backend::AutodiffBackend;
use pml_core::{IndicesTuple, LossInput, Miner, Reference, tensor::int_vec};
use pml_miners::{AnyMiner, MinerConfig};
use serde_json::Value;

use crate::{
    case::{Case, field, float_tensor, int_list},
    runner::{Failure, mismatch, parse_spec, tol},
};

/// Builds the miner of a spec (a top-level `distance` is folded into its params).
pub(crate) fn build_miner(spec: &Value) -> Result<AnyMiner, Failure> {
    Ok(MinerConfig::from_spec(&parse_spec(spec)?)?.try_init()?)
}

/// PML's order for a loss with a miner: mine on the call's inputs, then pass the result to the
/// loss as its indices tuple.
pub(crate) fn mine_for_loss<B: AutodiffBackend>(miner: &AnyMiner, input: &mut LossInput<B>) {
    let (labels, _) = input.tuple_labels();
    let tuple = miner.mine(input.embeddings.clone(), labels, input.reference.clone());
    input.indices_tuple = Some(tuple);
}

/// Runs one miner case.
pub(crate) fn miner_case<B: AutodiffBackend>(
    case: &Case,
    device: &B::Device,
) -> Result<(), Failure> {
    let miner = build_miner(&case.spec)?;
    let inputs = &case.inputs;
    let embeddings = float_tensor::<B, 2>("embeddings", field(inputs, "embeddings")?, device)?;
    let labels = int_list::<B>("labels", field(inputs, "labels")?, device)?;
    let reference = match inputs.get("ref_emb").filter(|v| !v.is_null()) {
        Some(r) => Some(Reference {
            embeddings: float_tensor::<B, 2>("ref_emb", r, device)?,
            labels: Some(int_list::<B>(
                "ref_labels",
                field(inputs, "ref_labels")?,
                device,
            )?),
        }),
        None => None,
    };
    let got = miner.mine(embeddings, labels, reference);
    let min_jaccard = tol(case, "min_jaccard")?;
    let unordered = case
        .tolerance
        .get("unordered_pairs")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let lists = |key: &str, k: usize| -> Result<Option<Vec<Vec<i64>>>, Failure> {
        let Some(v) = case.expected.get(key).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let lists: Vec<Vec<i64>> = serde_json::from_value(v.clone())
            .map_err(|e| mismatch(format!("expected.{key}: {e}")))?;
        // Pairs: a1/p and a2/n match in length; triplets: all three.
        let same = |i: usize, j: usize| lists[i].len() == lists[j].len();
        let ok = lists.len() == k
            && if k == 4 {
                same(0, 1) && same(2, 3)
            } else {
                same(0, 1) && same(1, 2)
            };
        if !ok {
            return Err(mismatch(format!(
                "expected.{key} needs {k} lists (of matching lengths)"
            )));
        }
        Ok(Some(lists))
    };
    if let Some(exp) = lists("pairs", 4)? {
        let IndicesTuple::Pairs { a1, p, a2, n } = got else {
            return Err(mismatch("PML returns pairs, the port returned triplets"));
        };
        let pair_set = |x: Vec<i64>, y: Vec<i64>| -> BTreeSet<Vec<i64>> {
            x.into_iter()
                .zip(y)
                .map(|(i, j)| {
                    if unordered && j < i {
                        vec![j, i]
                    } else {
                        vec![i, j]
                    }
                })
                .collect()
        };
        let [e1, ep, e2, en] = <[Vec<i64>; 4]>::try_from(exp).expect("checked: 4 lists");
        check_jaccard(
            "positive pairs",
            &pair_set(int_vec(a1), int_vec(p)),
            &pair_set(e1, ep),
            min_jaccard,
        )?;
        check_jaccard(
            "negative pairs",
            &pair_set(int_vec(a2), int_vec(n)),
            &pair_set(e2, en),
            min_jaccard,
        )
    } else if let Some(exp) = lists("triplets", 3)? {
        let IndicesTuple::Triplets { a, p, n } = got else {
            return Err(mismatch("PML returns triplets, the port returned pairs"));
        };
        let triplet_set = |a: Vec<i64>, p: Vec<i64>, n: Vec<i64>| -> BTreeSet<Vec<i64>> {
            (0..a.len()).map(|k| vec![a[k], p[k], n[k]]).collect()
        };
        let [ea, ep, en] = <[Vec<i64>; 3]>::try_from(exp).expect("checked: 3 lists");
        check_jaccard(
            "triplets",
            &triplet_set(int_vec(a), int_vec(p), int_vec(n)),
            &triplet_set(ea, ep, en),
            min_jaccard,
        )
    } else {
        Err(mismatch("expected has neither `pairs` nor `triplets`"))
    }
}

/// `|got ∩ exp| / |got ∪ exp| ≥ min` (two empty sets are identical).
fn check_jaccard(
    what: &str,
    got: &BTreeSet<Vec<i64>>,
    exp: &BTreeSet<Vec<i64>>,
    min: f64,
) -> Result<(), Failure> {
    let union = got.union(exp).count();
    if union == 0 {
        return Ok(());
    }
    let jaccard = got.intersection(exp).count() as f64 / union as f64;
    if jaccard < min {
        return Err(mismatch(format!(
            "{what}: Jaccard similarity {jaccard:.4} < {min} ({} mined, {} expected, {} in common)",
            got.len(),
            exp.len(),
            got.intersection(exp).count()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Tensor, TensorData};
    use pml_core::{MetricLoss, config::Spec, tensor::int_tensor};
    use pml_losses::LossConfig;

    #[test]
    fn every_loss_accepts_every_miners_output() {
        type B = Autodiff<NdArray>;
        let device = Default::default();
        // 12 rows (a multiple of 3 for EmbeddingsAlreadyPackagedAsTriplets), 3 classes.
        let data: Vec<f32> = (0..12 * 4)
            .map(|i| ((i * 37 % 17) as f32 / 17.0 - 0.5) + (i / 16) as f32 * 0.3)
            .collect();
        let labels: Vec<i64> = (0..12).map(|i| i % 3).collect();
        let spec = |name: &str| Spec {
            name: name.to_string(),
            params: Value::Object(Default::default()),
        };
        for miner_name in MinerConfig::PML_NAMES {
            let miner = MinerConfig::from_spec(&spec(miner_name)).unwrap().init();
            for loss_name in [
                "ContrastiveLoss",
                "TripletMarginLoss",
                "MultiSimilarityLoss",
            ] {
                let loss = LossConfig::from_spec(&spec(loss_name))
                    .unwrap()
                    .try_init::<B>(&device)
                    .unwrap();
                let x = Tensor::<B, 2>::from_data(TensorData::new(data.clone(), [12, 4]), &device)
                    .require_grad();
                let mut input = LossInput::new(x.clone(), int_tensor(&labels, &device));
                mine_for_loss(&miner, &mut input);
                let value = loss.forward(input);
                let v = pml_core::tensor::float_vec(value.clone())[0];
                assert!(v.is_finite(), "{miner_name} -> {loss_name}: {v}");
                let grads = value.backward();
                let _ = x.grad(&grads);
            }
        }
    }

    #[test]
    fn jaccard_of_sets() {
        let s = |v: &[[i64; 2]]| v.iter().map(|x| x.to_vec()).collect::<BTreeSet<_>>();
        assert!(check_jaccard("x", &s(&[]), &s(&[]), 1.0).is_ok());
        assert!(check_jaccard("x", &s(&[[0, 1], [1, 2]]), &s(&[[1, 2], [0, 1]]), 1.0).is_ok());
        assert!(check_jaccard("x", &s(&[[0, 1]]), &s(&[[0, 1], [1, 2]]), 0.6).is_err());
    }
}
