pub mod distance;
pub mod loss;
pub mod miner;
pub mod reducer;
pub mod regularizer;
