//! Choosing the Burn backend at run time among those compiled in (features `ndarray`,
//! `wgpu`, `cuda`).

use burn::tensor::backend::AutodiffBackend;

/// A backend the examples can run on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// CPU, burn-ndarray with SIMD and threads (feature `ndarray`, the default).
    Ndarray,
    /// WGPU: Vulkan, Metal, DX12 (feature `wgpu`).
    Wgpu,
    /// CUDA (feature `cuda`).
    Cuda,
}

/// A job generic over the backend: what [`dispatch`] runs.
pub trait Job {
    /// The job's result.
    type Output;

    /// Runs on backend `B` (autodiff) and its default device.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the chosen backend.
///
/// # Errors
/// When the backend's feature was not compiled in.
pub fn dispatch<J: Job>(kind: BackendKind, job: J) -> Result<J::Output, String> {
    match kind {
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => {
            Ok(job.run::<burn::backend::Autodiff<burn::backend::NdArray>>(Default::default()))
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            Ok(job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(Default::default()))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            Ok(job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(Default::default()))
        }
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "backend {other:?} is not compiled in: rebuild with `--features {}`",
            format!("{other:?}").to_lowercase()
        )),
    }
}
