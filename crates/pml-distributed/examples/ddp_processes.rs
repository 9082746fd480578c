//! Data-parallel metric learning with peers in separate processes (one per machine in a real
//! run), through burn-collective's global orchestrator.
//!
//! Two processes on localhost, plus the orchestrator (three terminals, or `&`):
//!
//! ```text
//! cargo build -p pml-distributed --example ddp_processes
//! EX=$CARGO_TARGET_DIR/debug/examples/ddp_processes   # target/debug/... by default
//! $EX orchestrator --port 3000 &
//! $EX peer --rank 0 --world-size 2 --orchestrator ws://localhost:3000 --node-address ws://localhost:3001 --data-port 3001 &
//! $EX peer --rank 1 --world-size 2 --orchestrator ws://localhost:3000 --node-address ws://localhost:3002 --data-port 3002
//! ```
//!
//! Across machines, run the orchestrator on one of them and give each peer its own machine's
//! address as `--node-address` (`ws://HOST:PORT`, the port equal to `--data-port`) and the
//! orchestrator's as `--orchestrator`. Each process prints its parameter checksum at the end:
//! the same on every peer. A peer that is missing makes the others fail after `--timeout`
//! seconds with a message instead of waiting forever.

mod common;

use std::time::Duration;

use burn::backend::NdArray;
use clap::{Parser, Subcommand};
use pml_distributed::{GlobalConfig, PeerGroup, PeerGroupConfig};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs burn-collective's global orchestrator until interrupted.
    Orchestrator {
        /// The port the peers connect to.
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
    /// Runs one peer (one process, one local peer).
    Peer {
        /// This peer's rank, in 0..world-size.
        #[arg(long)]
        rank: usize,
        /// The number of peers (processes).
        #[arg(long, default_value_t = 2)]
        world_size: usize,
        /// The orchestrator, ws://host:port.
        #[arg(long, default_value = "ws://localhost:3000")]
        orchestrator: String,
        /// This process's address as the other peers reach it, ws://host:port.
        #[arg(long)]
        node_address: String,
        /// The port this process serves tensors on (the port of --node-address).
        #[arg(long)]
        data_port: u16,
        /// Seconds any collective operation waits for the other peers.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

fn main() {
    match Args::parse().command {
        Command::Orchestrator { port } => {
            println!("orchestrator listening on port {port}");
            tokio::runtime::Runtime::new()
                .expect("a tokio runtime")
                .block_on(pml_distributed::start_global_orchestrator(port));
        }
        Command::Peer {
            rank,
            world_size,
            orchestrator,
            node_address,
            data_port,
            timeout,
        } => {
            let config = PeerGroupConfig::process(
                rank,
                GlobalConfig {
                    num_nodes: world_size as u32,
                    orchestrator,
                    node_address,
                    data_service_port: data_port,
                },
            )
            .with_timeout(Duration::from_secs(timeout));
            let run = || -> Result<f64, pml_distributed::DistributedError> {
                let group = PeerGroup::register::<NdArray>(config, &Default::default())?;
                let net = common::train(group.clone())?;
                group.finish()?;
                Ok(common::checksum(&net))
            };
            match run() {
                Ok(sum) => println!("peer {rank}: parameter checksum {sum}"),
                Err(e) => {
                    eprintln!("peer {rank}: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}
