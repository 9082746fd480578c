use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossInput, LossTerms, MetricLoss, Miner, PmlError};
use pml_miners::{AnyMiner, MinerConfig};

use crate::{BaseLoss, LossConfig};

/// Configuration of [`MultipleLosses`], with PML's argument names and defaults (the list form
/// of PML's arguments).
#[derive(Config, Debug)]
pub struct MultipleLossesConfig {
    /// The losses to add up.
    pub losses: Vec<LossConfig>,
    /// One optional miner per loss; a loss with a miner gets the miner's tuples.
    pub miners: Option<Vec<Option<MinerConfig>>>,
    /// One weight per loss; `None` weighs every loss 1.
    pub weights: Option<Vec<f64>>,
}

impl MultipleLossesConfig {
    /// Builds the sum on `device`, refusing a weight list of the wrong length.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<MultipleLosses<B>, PmlError> {
        if self.losses.is_empty() {
            return Err(PmlError::invalid_argument(
                "losses",
                "[]",
                "MultipleLosses needs at least one loss",
            ));
        }
        let weights = self
            .weights
            .clone()
            .unwrap_or_else(|| vec![1.0; self.losses.len()]);
        if weights.len() != self.losses.len() {
            return Err(PmlError::invalid_argument(
                "weights",
                format!("{weights:?}"),
                format!(
                    "MultipleLosses needs one weight per loss ({} losses)",
                    self.losses.len()
                ),
            ));
        }
        let miners = match &self.miners {
            None => vec![None; self.losses.len()],
            Some(m) if m.len() != self.losses.len() => {
                return Err(PmlError::invalid_argument(
                    "miners",
                    format!("{} entries", m.len()),
                    format!(
                        "MultipleLosses needs one (optional) miner per loss ({} losses)",
                        self.losses.len()
                    ),
                ));
            }
            Some(m) => m
                .iter()
                .map(|c| c.as_ref().map(MinerConfig::try_init).transpose())
                .collect::<Result<_, _>>()?,
        };
        Ok(MultipleLosses {
            miners,
            losses: self
                .losses
                .iter()
                .map(|l| l.try_init_base(device))
                .collect::<Result<_, _>>()?,
            weights,
        })
    }

    /// Builds the sum on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultipleLosses<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A weighted sum of losses on the same batch (PML's `MultipleLosses`):
/// `L = Σᵢ wᵢ · Lᵢ(embeddings, labels, indices_tuple)`, each loss reduced by its own reducer;
/// a loss with a miner gets the miner's tuples instead of the input's.
///
/// # Panics
/// If an indices tuple is given while miners are configured (PML asserts the same).
///
/// `forward_terms` returns every loss's terms, named `"<i>:<term>"`; `reduce` reduces each
/// loss's group with that loss's reducer and applies the weights.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`
/// - output `[1]`
#[derive(Module, Debug)]
pub struct MultipleLosses<B: Backend> {
    losses: Vec<BaseLoss<B>>,
    miners: Vec<Option<AnyMiner>>,
    weights: Vec<f64>,
}

impl<B: Backend> MultipleLosses<B> {
    /// The input of loss `i`: with the tuples of its miner, if it has one.
    fn input_for(&self, i: usize, input: &LossInput<B>) -> LossInput<B> {
        match &self.miners[i] {
            None => input.clone(),
            Some(miner) => {
                assert!(
                    input.indices_tuple.is_none(),
                    "MultipleLosses: an indices_tuple cannot be given when miners are configured"
                );
                let labels = input
                    .labels
                    .clone()
                    .unwrap_or_else(|| panic!("MultipleLosses: miners need labels"));
                let tuple = miner.mine(input.embeddings.clone(), labels, input.reference.clone());
                input.clone().with_indices(tuple)
            }
        }
    }
}

impl<B: Backend> MetricLoss<B> for MultipleLosses<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        let mut all = LossTerms::new();
        for (i, loss) in self.losses.iter().enumerate() {
            for mut term in loss.forward_terms(&self.input_for(i, input)).terms {
                term.name = format!("{i}:{}", term.name);
                all.push(term);
            }
        }
        all
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        let mut groups: Vec<LossTerms<B>> =
            (0..self.losses.len()).map(|_| LossTerms::new()).collect();
        for mut term in terms.terms {
            let (i, name) = term
                .name
                .split_once(':')
                .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.to_string())))
                .unwrap_or_else(|| {
                    panic!(
                        "MultipleLosses: term `{}` is not named `<i>:<term>`",
                        term.name
                    )
                });
            term.name = name;
            groups[i].push(term);
        }
        self.losses
            .iter()
            .zip(&self.weights)
            .zip(groups)
            .map(|((loss, w), group)| loss.reduce(group, input).mul_scalar(*w))
            .reduce(|a, b| a + b)
            .expect("at least one loss")
    }

    fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
        self.losses
            .iter()
            .zip(&self.weights)
            .enumerate()
            .map(|(i, (loss, w))| loss.forward(self.input_for(i, &input)).mul_scalar(*w))
            .reduce(|a, b| a + b)
            .expect("at least one loss")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContrastiveLossConfig, TripletMarginLossConfig};
    use burn::{backend::NdArray, tensor::Int};

    #[test]
    fn weighted_sum_and_terms_agree() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_floats(
            [[1.0, 0.0], [0.8, 0.3], [0.0, 1.0], [0.2, 0.9]],
            &device,
        );
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
        let a = LossConfig::TripletMargin(TripletMarginLossConfig::new().with_margin(0.5));
        let b = LossConfig::Contrastive(ContrastiveLossConfig::new());
        let sum = MultipleLossesConfig::new(vec![a.clone(), b.clone()])
            .with_weights(Some(vec![1.0, 0.5]))
            .init::<NdArray>(&device);
        let input = LossInput::new(x, labels);
        let got = sum.forward(input.clone()).into_scalar();
        let want = a
            .init::<NdArray>(&device)
            .forward(input.clone())
            .into_scalar()
            + 0.5
                * b.init::<NdArray>(&device)
                    .forward(input.clone())
                    .into_scalar();
        assert!((got - want).abs() < 1e-6);
        let via_terms = sum.reduce(sum.forward_terms(&input), &input).into_scalar();
        assert!((via_terms - want).abs() < 1e-6);
    }

    #[test]
    fn refuses_a_weight_list_of_the_wrong_length() {
        let a = LossConfig::Contrastive(ContrastiveLossConfig::new());
        let err = MultipleLossesConfig::new(vec![a])
            .with_weights(Some(vec![1.0, 2.0]))
            .try_init::<NdArray>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("`weights`"), "{err}");
    }
}
