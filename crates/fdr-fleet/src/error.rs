//! What can go wrong writing tables.

use std::path::Path;

/// An export that failed; no table file of it was left in place half-written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("writing {path}: {source}")]
    Parquet {
        /// The file being written.
        path: String,
        /// The writer's error.
        source: parquet::errors::ParquetError,
    },
    /// A table's rows did not make an Arrow batch (a defect of this crate).
    #[error("table {0}: {1}")]
    Arrow(&'static str, arrow_schema::ArrowError),
    /// The dump cannot be read at all (not a trace, or its header is unreadable).
    #[error(transparent)]
    Trace(#[from] fdr_analyzer::AnalyzeError),
    /// A dump id that cannot name a file.
    #[error(
        "dump id {0:?}: ids are 1 to 200 bytes of letters, digits, '.', '_' and '-', not starting with '.'"
    )]
    BadDumpId(String),
}

impl ExportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ExportError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn parquet(path: &Path, source: parquet::errors::ParquetError) -> Self {
        ExportError::Parquet {
            path: path.display().to_string(),
            source,
        }
    }
}
