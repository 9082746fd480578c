//! Bad setups end with a clear error or a timeout with a message, never an endless wait.

mod common;

use std::time::{Duration, Instant};

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor};
use common::{Ad, run_broken_peers, run_peers, turn};
use pml_core::{LossInput, MetricLoss, PmlError};
use pml_distributed::{
    DistributedError, DistributedLossWrapper, PeerGroup, PeerGroupConfig, all_gather,
};
use pml_losses::{ContrastiveLossConfig, CrossBatchMemoryConfig, LossConfig};

const SHORT: Duration = Duration::from_secs(2);

fn ones(rows: usize, width: usize) -> Tensor<Ad, 2> {
    Tensor::ones([rows, width], &Default::default())
}

fn zeros_labels(rows: usize) -> Tensor<Ad, 1, Int> {
    Tensor::zeros([rows], &Default::default())
}

#[test]
fn peers_disagreeing_on_the_embedding_width_all_get_a_mismatch_error() {
    let _turn = turn();
    let errors = run_peers(2, Duration::from_secs(30), |group| {
        let width = 4 + group.rank();
        all_gather(&group, ones(3, width), Some(zeros_labels(3)))
            .err()
            .map(|e| e.to_string())
    });
    for (rank, e) in errors.into_iter().enumerate() {
        let e = e.unwrap_or_else(|| panic!("peer {rank} gathered mismatched widths"));
        assert!(
            e.contains("`embeddings`") && e.contains("peer 0: 4, peer 1: 5"),
            "peer {rank}: {e}"
        );
    }
}

#[test]
fn peers_disagreeing_on_labels_get_a_mismatch_error() {
    let _turn = turn();
    let errors = run_peers(2, Duration::from_secs(30), |group| {
        let labels = (group.rank() == 0).then(|| zeros_labels(3));
        all_gather(&group, ones(3, 4), labels)
            .err()
            .map(|e| e.to_string())
    });
    for (rank, e) in errors.into_iter().enumerate() {
        let e = e.unwrap_or_else(|| panic!("peer {rank} gathered with and without labels"));
        assert!(e.contains("`labels`"), "peer {rank}: {e}");
    }
}

#[test]
fn a_peer_that_never_registers_times_out_with_a_message() {
    let _turn = turn();
    let start = Instant::now();
    let config = PeerGroupConfig::threads(0, 2).with_timeout(SHORT);
    let err = PeerGroup::register::<NdArray>(config, &Default::default()).unwrap_err();
    assert!(start.elapsed() < SHORT * 5, "waited {:?}", start.elapsed());
    assert!(matches!(err, DistributedError::Timeout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("register") && message.contains("peer 0 of 2"),
        "{message}"
    );
}

#[test]
fn a_peer_that_never_calls_the_loss_times_out_with_a_message() {
    let _turn = turn();
    let results = run_broken_peers(2, SHORT, |group| {
        if group.rank() == 1 {
            return None; // registered, but never takes part in the loss
        }
        let loss = DistributedLossWrapper::<Ad, _>::new(
            ContrastiveLossConfig::new().init(),
            false,
            group.clone(),
        )
        .unwrap();
        let start = Instant::now();
        let err = loss
            .try_forward_distributed(LossInput::new(ones(3, 4), zeros_labels(3)))
            .unwrap_err();
        Some((err.to_string(), start.elapsed()))
    });
    let (message, waited) = results[0].clone().expect("peer 0 ran the loss");
    assert!(waited < SHORT * 5, "waited {waited:?}");
    assert!(
        message.contains("all_reduce") && message.contains("did not complete within"),
        "{message}"
    );
}

#[test]
fn the_metric_loss_interface_reports_the_failure_as_a_pml_error() {
    let _turn = turn();
    let results = run_peers(2, Duration::from_secs(30), |group| {
        let width = 4 + group.rank();
        let loss = DistributedLossWrapper::<Ad, _>::new(
            ContrastiveLossConfig::new().init(),
            true,
            group.clone(),
        )
        .unwrap();
        loss.try_forward(LossInput::new(ones(3, width), zeros_labels(3)))
            .err()
    });
    for (rank, e) in results.into_iter().enumerate() {
        match e {
            Some(PmlError::InvalidInput { argument, reason }) => {
                assert_eq!(argument, "embeddings", "peer {rank}: {reason}");
                assert!(reason.contains("widths differ"), "peer {rank}: {reason}");
            }
            other => panic!("peer {rank}: {other:?}"),
        }
    }
}

#[test]
fn invalid_configs_name_the_argument_and_value() {
    let _turn = turn();
    let device = Default::default();
    let err = PeerGroup::register::<NdArray>(PeerGroupConfig::threads(2, 2), &device).unwrap_err();
    assert!(err.to_string().contains("`rank`: 2"), "{err}");
    let mut config = PeerGroupConfig::threads(0, 2);
    config.local_peers = 1;
    let err = PeerGroup::register::<NdArray>(config, &device).unwrap_err();
    assert!(err.to_string().contains("`local_peers`: 1"), "{err}");
    let global = pml_distributed::GlobalConfig {
        num_nodes: 2,
        orchestrator: "localhost:3000".into(),
        node_address: "ws://localhost:3001".into(),
        data_service_port: 3001,
    };
    let err =
        PeerGroup::register::<NdArray>(PeerGroupConfig::threads(0, 2).with_global(global), &device)
            .unwrap_err();
    assert!(
        err.to_string().contains("`orchestrator`: localhost:3000"),
        "{err}"
    );
}

#[test]
fn cross_batch_memory_refuses_the_efficient_mode() {
    let cbm = CrossBatchMemoryConfig::new(
        Box::new(LossConfig::Contrastive(ContrastiveLossConfig::new())),
        4,
    )
    .init::<Ad>(&Default::default());
    let err =
        DistributedLossWrapper::<Ad, _>::new(cbm.clone(), true, PeerGroup::single()).unwrap_err();
    assert!(err.to_string().contains("CrossBatchMemory"), "{err}");
    assert!(DistributedLossWrapper::<Ad, _>::new(cbm, false, PeerGroup::single()).is_ok());
}
