//! `novajoin manpages --out DIR`: man pages generated from the command
//! line definition (`novajoin.1`, `novajoin-server.1`, ...), so they never
//! disagree with `--help`.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use super::Cli;

/// Options of `novajoin manpages`.
#[derive(Debug, Clone, Args)]
pub struct ManpagesArgs {
    /// Directory to write the pages to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes one page per command and subcommand into `dir`; returns the
/// files written.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("novajoin") && n.ends_with(".1"))
        })
        .collect();
    written.sort();
    Ok(written)
}

/// Runs the subcommand.
pub fn run(args: &ManpagesArgs) -> i32 {
    match generate(&args.out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            0
        }
        Err(e) => {
            eprintln!(
                "novajoin manpages: cannot write to {}: {e}",
                args.out.display()
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = super::generate(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "novajoin.1",
            "novajoin-server.1",
            "novajoin-config-sample.1",
            "novajoin-install.1",
            "novajoin-policy-validate.1",
            "novajoin-policy-list-redundant.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        let server = std::fs::read_to_string(dir.path().join("novajoin-server.1")).unwrap();
        assert!(server.contains(".TH novajoin-server 1"), "{server}");
        assert!(server.contains("config\\-file"), "{server}");
    }
}
