//! Choosing the Burn backend at run time among those compiled in (features `ndarray`,
//! `wgpu`, `cuda`): the `--backend` flag, else the `PML_BACKEND` environment variable, else
//! [`DEFAULT_BACKEND`].

use burn::tensor::backend::AutodiffBackend;
pub use pml_core::backend::{BACKEND_ENV, BackendKind};

/// The backend used when neither `--backend` nor `PML_BACKEND` names one: the first compiled in
/// of ndarray, wgpu, cuda.
pub const DEFAULT_BACKEND: BackendKind =
    BackendKind::first_compiled(cfg!(feature = "ndarray"), cfg!(feature = "wgpu"));

/// A job generic over the backend: what [`dispatch`] runs.
pub trait Job {
    /// The job's result.
    type Output;

    /// Runs on backend `B` (autodiff) and its default device.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the backend `flag` names, else the one `PML_BACKEND` names, else
/// [`DEFAULT_BACKEND`].
///
/// # Errors
/// When `PML_BACKEND` names no backend, or the chosen backend's feature was not compiled in.
pub fn dispatch<J: Job>(flag: Option<BackendKind>, job: J) -> Result<J::Output, String> {
    let kind = BackendKind::choose(flag, DEFAULT_BACKEND)?;
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
            "backend {other} is not compiled in: rebuild with `--features {other}`"
        )),
    }
}
