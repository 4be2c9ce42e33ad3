//! `novajoin policy-sample`: the default policy with descriptions, as
//! oslopolicy-sample-generator writes it.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::policy::defaults::{sample_json, sample_yaml, NOVAJOIN_DEFAULTS};

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SampleFormat {
    /// YAML with every rule commented out under its description.
    Yaml,
    /// JSON (rule name to rule text; JSON has no comments).
    Json,
}

/// Options.
#[derive(Debug, Clone, Args)]
pub struct PolicySampleArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: SampleFormat,
    /// Write to this file instead of stdout.
    #[arg(long = "output-file", value_name = "PATH")]
    pub output_file: Option<PathBuf>,
}

/// Prints (or writes) the sample; returns the exit status.
pub fn run_cli(args: PolicySampleArgs) -> i32 {
    let text = match args.format {
        SampleFormat::Yaml => sample_yaml(NOVAJOIN_DEFAULTS),
        SampleFormat::Json => sample_json(NOVAJOIN_DEFAULTS),
    };
    match args.output_file {
        None => {
            print!("{text}");
            0
        }
        Some(p) => match std::fs::write(&p, text) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("novajoin policy-sample: cannot write {}: {e}", p.display());
                1
            }
        },
    }
}
