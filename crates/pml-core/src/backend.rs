//! Names of the Burn backends that pml-rs programs run on, and the `PML_BACKEND` override.
//!
//! The pml crates never pick a backend: every item is generic over Burn's `Backend`. The
//! programs of the workspace (the examples, `cargo xtask parity`, `cargo xtask bench` and the
//! bench binary) compile the backends of their cargo features (`ndarray`, the default, `wgpu`,
//! `cuda`) and choose one at run time: the `--backend` flag first, else the environment
//! variable [`BACKEND_ENV`], else their default. [`BackendKind::choose`] does that choice.
//!
//! ```
//! use pml_core::backend::BackendKind;
//!
//! let kind: BackendKind = "wgpu".parse().unwrap();
//! assert_eq!(kind, BackendKind::Wgpu);
//! assert_eq!(kind.to_string(), "wgpu");
//! assert!("tpu".parse::<BackendKind>().is_err());
//! ```

use std::{fmt, str::FromStr};

/// The environment variable that picks the backend when no `--backend` flag is given:
/// `ndarray`, `wgpu` or `cuda` (case-insensitive).
pub const BACKEND_ENV: &str = "PML_BACKEND";

/// A Burn backend that the workspace's programs can be built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// CPU: `burn::backend::NdArray` with SIMD kernels and threads (cargo feature `ndarray`).
    Ndarray,
    /// GPU through WGPU: Vulkan, Metal, DX12, or Mesa's software Vulkan driver lavapipe
    /// (cargo feature `wgpu`).
    Wgpu,
    /// NVIDIA GPUs through CUDA; the driver and NVRTC are loaded at run time (cargo feature
    /// `cuda`).
    Cuda,
}

impl BackendKind {
    /// Every backend, in the order of the cargo features.
    pub const ALL: [Self; 3] = [Self::Ndarray, Self::Wgpu, Self::Cuda];

    /// The backend's name: the value of `--backend` and [`BACKEND_ENV`], and the cargo feature
    /// that compiles it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// A program's default backend, the first of ndarray, wgpu, cuda that it compiled in;
    /// the program passes its own features:
    /// `BackendKind::first_compiled(cfg!(feature = "ndarray"), cfg!(feature = "wgpu"))`.
    pub const fn first_compiled(ndarray: bool, wgpu: bool) -> Self {
        if ndarray {
            Self::Ndarray
        } else if wgpu {
            Self::Wgpu
        } else {
            Self::Cuda
        }
    }

    /// The backend that [`BACKEND_ENV`] names, `None` when the variable is unset or empty.
    ///
    /// # Errors
    /// The variable names no backend, or is not Unicode; the message names the variable and its
    /// value.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(BACKEND_ENV) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => v
                .parse()
                .map(Some)
                .map_err(|e| format!("{BACKEND_ENV}={v:?}: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(format!("{BACKEND_ENV}={v:?}: not valid Unicode"))
            }
        }
    }

    /// The backend to run on: `flag` (a `--backend` argument) when given, else the one
    /// [`BACKEND_ENV`] names, else `default`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env), when `flag` is `None`.
    pub fn choose(flag: Option<Self>, default: Self) -> Result<Self, String> {
        match flag {
            Some(kind) => Ok(kind),
            None => Ok(Self::from_env()?.unwrap_or(default)),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    /// Parses `ndarray`, `wgpu` or `cuda`, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, String> {
        let name = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| format!("unknown backend `{s}` (expected ndarray, wgpu or cuda)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ignore_case() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.name().parse::<BackendKind>(), Ok(kind));
            assert_eq!(kind.name().to_uppercase().parse::<BackendKind>(), Ok(kind));
        }
        assert_eq!(" Wgpu ".parse::<BackendKind>(), Ok(BackendKind::Wgpu));
    }

    #[test]
    fn unknown_names_are_refused_with_the_value() {
        let err = "metal".parse::<BackendKind>().unwrap_err();
        assert!(err.contains("`metal`"), "{err}");
        assert!("".parse::<BackendKind>().is_err());
    }

    #[test]
    fn the_default_is_the_first_compiled_in() {
        use BackendKind::*;
        assert_eq!(BackendKind::first_compiled(true, true), Ndarray);
        assert_eq!(BackendKind::first_compiled(false, true), Wgpu);
        assert_eq!(BackendKind::first_compiled(false, false), Cuda);
    }

    #[test]
    fn the_flag_wins_over_the_default() {
        // The flag is returned without reading the environment.
        assert_eq!(
            BackendKind::choose(Some(BackendKind::Cuda), BackendKind::Ndarray),
            Ok(BackendKind::Cuda)
        );
    }
}
