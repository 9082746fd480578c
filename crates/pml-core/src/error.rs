use thiserror::Error;

/// Errors for everything that depends on data, files or user configuration.
///
/// Programmer contract violations (a labels tensor whose length differs from the batch, a
/// negative margin passed in code) panic instead, like Burn's own tensor operations; see each
/// item's `# Panics` section.
#[derive(Debug, Error)]
pub enum PmlError {
    /// A configuration value is out of its domain.
    #[error("invalid value for `{argument}`: {value} ({reason})")]
    InvalidArgument {
        /// The argument's name, as in PML.
        argument: String,
        /// The offending value, formatted.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// PML refuses this combination (for example a reducer that cannot reduce a loss's terms).
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// A PML class that pml-rs does not implement (yet).
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// A configuration could not be parsed.
    #[error("invalid config for {name}: {reason}")]
    Config {
        /// The PML class name of the item being configured.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// Tensor data that cannot be used (wrong rank, non-finite values, ...).
    #[error("invalid input `{argument}`: {reason}")]
    InvalidInput {
        /// The input's name (`embeddings`, `labels`, `ref_emb`, ...).
        argument: String,
        /// What was wrong, with shapes or values.
        reason: String,
    },
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file's path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl PmlError {
    /// Shorthand for [`PmlError::InvalidArgument`].
    pub fn invalid_argument(
        argument: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidArgument {
            argument: argument.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`PmlError::InvalidInput`].
    pub fn invalid_input(argument: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            argument: argument.into(),
            reason: reason.into(),
        }
    }
}
