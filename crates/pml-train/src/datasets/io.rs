//! Reading files that may be gzip-compressed (detected by their magic bytes, not their name).

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use pml_core::PmlError;

/// A [`PmlError::File`] for `path` with `reason`.
pub(crate) fn file_error(path: impl AsRef<Path>, reason: impl Into<String>) -> PmlError {
    PmlError::File {
        path: path.as_ref().display().to_string(),
        reason: reason.into(),
    }
}

/// The bytes of `path`, decompressed when they start with the gzip magic `1f 8b`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, PmlError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    gunzip_if_needed(bytes, &path.display().to_string())
}

/// `bytes` decompressed when they start with the gzip magic; `name` names them in errors.
pub(crate) fn gunzip_if_needed(bytes: Vec<u8>, name: &str) -> Result<Vec<u8>, PmlError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| file_error(name, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}
