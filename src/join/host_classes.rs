//! Which IPA host classes (`ipa_hostclass` in instance metadata) each
//! project may use: `[<project name>] allowed_classes` sections of
//! join.conf, read once at start-up.

use std::collections::BTreeMap;

use crate::config::files::split_list;
use crate::config::ConfigFiles;

/// Host classes by project name; `*` allows any class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostClassRules {
    by_project: BTreeMap<String, Vec<String>>,
}

impl HostClassRules {
    /// Reads every `allowed_classes` of join.conf.
    pub fn from_config(config: &ConfigFiles) -> Self {
        Self {
            by_project: config
                .sections_setting("allowed_classes")
                .into_iter()
                .map(|(project, at)| (project.to_string(), split_list(&at.value)))
                .collect(),
        }
    }

    /// Whether `project` may put its hosts in `hostclass`.
    pub fn allows(&self, project: &str, hostclass: &str) -> bool {
        self.by_project
            .get(project)
            .is_some_and(|classes| classes.iter().any(|c| c == hostclass || c == "*"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn each_project_gets_only_its_classes() {
        let mut cfg = ConfigFiles::default();
        cfg.add_text(
            Path::new("join.conf"),
            "[DEFAULT]\ndomain = x\n[tenantA]\nallowed_classes = web, db\n[tenantB]\nallowed_classes = *\n",
        )
        .unwrap();
        let rules = HostClassRules::from_config(&cfg);
        assert!(rules.allows("tenantA", "web") && rules.allows("tenantA", "db"));
        assert!(!rules.allows("tenantA", "admin"));
        assert!(rules.allows("tenantB", "anything"));
        assert!(!rules.allows("tenantC", "web"));
        assert!(!rules.allows("DEFAULT", "x"));
    }
}
