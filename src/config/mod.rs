//! Configuration: join.conf (oslo.config INI) and pipeline.toml.
//!
//! join.conf keeps the original novajoin option names and defaults so an
//! existing deployment's file works unchanged. Each part of the service
//! declares the options it reads beside its code (see [`schema`]); the list
//! of them all is [`crate::option_catalog::CATALOG`]. This module reads the
//! files and knows no component.

pub mod files;
pub mod pipeline_file;
pub mod schema;
pub mod source;

use std::path::PathBuf;

pub use files::{ConfigFiles, ConfigWarning, Located};
pub use source::OptionSource;

/// Why the configuration cannot be used. Every variant names where to look.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not valid INI.
    #[error("{}:{line}: {problem}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A known option has a value of the wrong type or range.
    #[error("{}:{line}: [{group}] {option}: {problem}", file.display())]
    BadValue {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The section.
        group: String,
        /// The option.
        option: String,
        /// What is wrong (never echoes a secret's value).
        problem: String,
    },
    /// A needed option is not set anywhere.
    #[error("[{group}] {option} is not set; {why}")]
    Missing {
        /// The section.
        group: String,
        /// The option.
        option: String,
        /// What needs it.
        why: String,
    },
    /// The pipeline file is wrong.
    #[error(transparent)]
    Pipeline(#[from] pipeline_file::PipelineFileError),
}
