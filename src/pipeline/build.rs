//! What building a filter or app from pipeline.toml takes: its options
//! ([`FilterOptions`], an [`OptionSource`]) and the shared
//! [`BuildContext`]. A build reads its typed settings from the options and
//! returns its layer ([`FilterBuild`]) or service ([`AppBuild`]); nothing in
//! it waits on the network, so start-up errors are configuration errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{HttpLayer, HttpService};
use crate::config::pipeline_file::{OptionAt, PipelineFileError};
use crate::config::schema::{OptionKind, OptionSpec};
use crate::config::{ConfigError, ConfigFiles, OptionSource};
use crate::health::HealthRegistry;

/// What a filter or app builder gets: shared, owned, cheap to clone.
#[derive(Clone)]
pub struct BuildContext {
    /// The merged join.conf.
    pub config: Arc<ConfigFiles>,
    /// Where components register their health probes.
    pub health: HealthRegistry,
}

/// A filter's options: the `[filter.NAME]` table of pipeline.toml, falling
/// back to the matching join.conf option, as paste-section options did.
pub struct FilterOptions {
    filter: String,
    file: PathBuf,
    table: BTreeMap<String, OptionAt>,
    config: Arc<ConfigFiles>,
}

impl FilterOptions {
    /// Options for `filter`, read from `table` (may be empty).
    pub fn new(
        filter: &str,
        file: PathBuf,
        table: BTreeMap<String, OptionAt>,
        config: Arc<ConfigFiles>,
    ) -> Self {
        Self {
            filter: filter.to_string(),
            file,
            table,
            config,
        }
    }

    fn err(&self, line: usize, problem: String) -> PipelineFileError {
        PipelineFileError {
            file: self.file.clone(),
            line,
            problem,
        }
    }

    fn config_err(e: crate::config::ConfigError) -> PipelineFileError {
        PipelineFileError {
            file: PathBuf::from("join.conf"),
            line: 0,
            problem: e.to_string(),
        }
    }

    /// A text option: pipeline table first, then join.conf (`spec`).
    fn table_string(&mut self, spec: &OptionSpec) -> Result<Option<String>, PipelineFileError> {
        match self.table.remove(spec.name) {
            Some(OptionAt {
                value: toml::Value::String(s),
                ..
            }) => Ok(Some(s)),
            Some(at) => Err(self.err(
                at.line,
                format!(
                    "filter '{}' option '{}' must be a string, not {}",
                    self.filter,
                    spec.name,
                    at.value.type_str()
                ),
            )),
            None => Ok(self.config.string(spec)),
        }
    }

    /// A boolean option.
    fn table_bool(&mut self, spec: &OptionSpec) -> Result<bool, PipelineFileError> {
        match self.table.remove(spec.name) {
            Some(OptionAt {
                value: toml::Value::Boolean(b),
                ..
            }) => Ok(b),
            Some(at) => Err(self.err(
                at.line,
                format!(
                    "filter '{}' option '{}' must be true or false",
                    self.filter, spec.name
                ),
            )),
            None => self.config.bool(spec).map_err(Self::config_err),
        }
    }

    /// An integer option, checked against the spec's bounds.
    fn table_int(&mut self, spec: &OptionSpec) -> Result<Option<i64>, PipelineFileError> {
        match self.table.remove(spec.name) {
            Some(OptionAt {
                value: toml::Value::Integer(n),
                line,
            }) => {
                if let crate::config::schema::OptionKind::Int { min, max } = spec.kind {
                    if n < min || n > max {
                        return Err(self.err(
                            line,
                            format!(
                                "filter '{}' option '{}' = {n} is out of range {min}..={max}",
                                self.filter, spec.name
                            ),
                        ));
                    }
                }
                Ok(Some(n))
            }
            Some(at) => Err(self.err(
                at.line,
                format!(
                    "filter '{}' option '{}' must be a whole number",
                    self.filter, spec.name
                ),
            )),
            None => self.config.int(spec).map_err(Self::config_err),
        }
    }

    /// A list option: a TOML array of strings or a comma-separated string.
    fn table_list(&mut self, spec: &OptionSpec) -> Result<Vec<String>, PipelineFileError> {
        match self.table.remove(spec.name) {
            Some(OptionAt {
                value: toml::Value::String(s),
                ..
            }) => Ok(crate::config::files::split_list(&s)),
            Some(OptionAt {
                value: toml::Value::Array(a),
                line,
            }) => a
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    _ => Err(self.err(
                        line,
                        format!(
                            "filter '{}' option '{}' must be a list of strings",
                            self.filter, spec.name
                        ),
                    )),
                })
                .collect(),
            Some(at) => Err(self.err(
                at.line,
                format!(
                    "filter '{}' option '{}' must be a list of strings",
                    self.filter, spec.name
                ),
            )),
            None => Ok(self.config.list(spec)),
        }
    }

    /// Takes a raw value of a filter-only option (not in join.conf).
    pub fn raw(&mut self, name: &str) -> Option<OptionAt> {
        self.table.remove(name)
    }

    /// The merged join.conf, for options a filter reads only from there.
    pub fn config(&self) -> &Arc<ConfigFiles> {
        &self.config
    }

    /// Fails on any option the filter did not take: a typo must not be
    /// silently ignored.
    pub fn finish(self) -> Result<(), PipelineFileError> {
        match self.table.iter().next() {
            Some((k, at)) => Err(self.err(at.line, format!(
                "unknown option '{k}' for filter '{}'; remove it or check the filter's documentation",
                self.filter))),
            None => Ok(()),
        }
    }
}

impl OptionSource for FilterOptions {
    fn string(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError> {
        Ok(self.table_string(spec)?)
    }

    fn bool(&mut self, spec: &OptionSpec) -> Result<bool, ConfigError> {
        Ok(self.table_bool(spec)?)
    }

    fn int(&mut self, spec: &OptionSpec) -> Result<Option<i64>, ConfigError> {
        Ok(self.table_int(spec)?)
    }

    /// A number of seconds may be written as a whole or a decimal number.
    fn float(&mut self, spec: &OptionSpec) -> Result<Option<f64>, ConfigError> {
        match self.table.remove(spec.name) {
            Some(OptionAt {
                value: toml::Value::Integer(n),
                ..
            }) if n >= 0 => Ok(Some(n as f64)),
            Some(OptionAt {
                value: toml::Value::Float(f),
                ..
            }) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
            Some(at) => Err(self
                .err(
                    at.line,
                    format!(
                        "filter '{}' option '{}' must be a non-negative number",
                        self.filter, spec.name
                    ),
                )
                .into()),
            None => self.config.float(spec),
        }
    }

    fn list(&mut self, spec: &OptionSpec) -> Result<Vec<String>, ConfigError> {
        Ok(self.table_list(spec)?)
    }

    fn choice(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError> {
        let line = self.table.get(spec.name).map(|at| at.line);
        let value = self.table_string(spec)?;
        match (spec.kind, &value, line) {
            (OptionKind::Choice(words), Some(v), Some(line)) if !words.contains(&v.as_str()) => {
                Err(self
                    .err(
                        line,
                        format!(
                            "filter '{}' option '{}' = {v:?} is not one of: {}",
                            self.filter,
                            spec.name,
                            words.join(", ")
                        ),
                    )
                    .into())
            }
            // From join.conf: checked there.
            (_, _, None) => self.config.choice(spec),
            _ => Ok(value),
        }
    }
}

/// Builds a filter's layer from its options.
pub type FilterBuild = fn(FilterOptions, &BuildContext) -> Result<HttpLayer, PipelineFileError>;

/// Builds an app from its options.
pub type AppBuild = fn(FilterOptions, &BuildContext) -> Result<HttpService, PipelineFileError>;
