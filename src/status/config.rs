//! "Configuration": join.conf loads without errors or warnings, and the
//! pipeline file it names loads.

use std::path::PathBuf;
use std::sync::Arc;

use super::report::CheckResult;
use crate::config::pipeline_file::PipelineFile;
use crate::config::ConfigFiles;

/// The check's name.
pub const NAME: &str = "Configuration";

/// Loads join.conf as the service does. Returns the result and, when the
/// files could be read at all, the configuration for the other checks.
pub fn check(files: &[PathBuf], dirs: &[PathBuf]) -> (CheckResult, Option<Arc<ConfigFiles>>) {
    let cfg = match ConfigFiles::load(files, dirs) {
        Ok(c) => c,
        Err(e) => return (CheckResult::failure(NAME, e.to_string()), None),
    };
    if cfg.files().is_empty() {
        let searched: Vec<String> = crate::config::files::default_config_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return (
            CheckResult::failure(
                NAME,
                format!(
                    "no join.conf found (searched {}); pass --config-file",
                    searched.join(", ")
                ),
            ),
            None,
        );
    }
    let cfg = Arc::new(cfg);
    let read: Vec<String> = cfg
        .files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let warnings = match cfg.validate(&crate::option_catalog::CATALOG) {
        Ok(w) => w,
        Err(e) => return (CheckResult::failure(NAME, e.to_string()), Some(cfg)),
    };
    let pipeline = crate::server::pipeline_path(&cfg);
    if let Err(e) = PipelineFile::load(&pipeline) {
        return (CheckResult::failure(NAME, e.to_string()), Some(cfg));
    }
    let result = if warnings.is_empty() {
        CheckResult::success(
            NAME,
            format!("read {}; pipeline {}", read.join(", "), pipeline.display()),
        )
    } else {
        let list: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        CheckResult::warning(
            NAME,
            format!("{} warning(s): {}", list.len(), list.join("; ")),
        )
    };
    (result, Some(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::report::Code;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn an_unknown_option_is_a_warning_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let pipeline = write(
            d.path(),
            "pipeline.toml",
            include_str!("../../pipeline.toml"),
        );
        let conf = write(
            d.path(),
            "join.conf",
            &format!(
                "[DEFAULT]\napi_paste_config = {}\nno_such_option = 1\n",
                pipeline.display()
            ),
        );
        let (r, cfg) = check(&[conf], &[]);
        assert!(cfg.is_some());
        assert_eq!(r.code, Code::Warning, "{r:?}");
        assert!(r.details.unwrap().contains("no_such_option"));
    }

    #[test]
    fn a_missing_file_is_a_failure_naming_it() {
        let (r, cfg) = check(&[PathBuf::from("/nonexistent/join.conf")], &[]);
        assert!(cfg.is_none());
        assert_eq!(r.code, Code::Failure);
        assert!(r.details.unwrap().contains("/nonexistent/join.conf"));
    }
}
