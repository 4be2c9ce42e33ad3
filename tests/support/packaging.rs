//! The files an operator installs, as the packaging tests read them:
//! shipped files from the repository, and the generated ones compared with
//! what the code produces now (`NOVAJOIN_UPDATE_PACKAGING=1` rewrites them).

pub use super::keystone::repo_root as repo;

/// A file of the repository, as shipped.
pub fn shipped(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Compares a checked-in generated file with what the code makes now.
pub fn assert_generated(rel: &str, expected: &str, how: &str) {
    let path = repo().join(rel);
    if std::env::var_os("NOVAJOIN_UPDATE_PACKAGING").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{rel} is stale ({how}); regenerate with NOVAJOIN_UPDATE_PACKAGING=1 cargo test --test generated_files"
    );
}

/// Replaces each `from` (which must occur) with `to`.
pub fn adjust(text: &str, edits: &[(&str, &str)]) -> String {
    let mut t = text.to_string();
    for (from, to) in edits {
        assert!(
            t.contains(from),
            "the shipped file no longer contains {from:?}; update the test"
        );
        t = t.replace(from, to);
    }
    t
}
