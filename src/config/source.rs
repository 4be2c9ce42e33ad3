//! [`OptionSource`]: the one way a component reads its options, whether
//! from join.conf alone ([`ConfigFiles`]) or from a pipeline filter's table
//! in front of join.conf (the pipeline's `FilterOptions`). Every getter
//! applies the declaration's default, so a default is written once, in the
//! [`OptionSpec`].

use super::files::ConfigFiles;
use super::schema::OptionSpec;
use super::ConfigError;

/// Typed option values, checked against their declarations.
pub trait OptionSource {
    /// Text, or the default; `None` when unset and without default.
    fn string(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError>;
    /// A boolean (oslo.config's words), or the default (`false` without one).
    fn bool(&mut self, spec: &OptionSpec) -> Result<bool, ConfigError>;
    /// An integer within the declared bounds, or the default.
    fn int(&mut self, spec: &OptionSpec) -> Result<Option<i64>, ConfigError>;
    /// A non-negative number, or the default.
    fn float(&mut self, spec: &OptionSpec) -> Result<Option<f64>, ConfigError>;
    /// A list, or the default's items.
    fn list(&mut self, spec: &OptionSpec) -> Result<Vec<String>, ConfigError>;
    /// One of the declared words, or the default.
    fn choice(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError>;

    /// [`Self::int`] of an option declared with a default.
    fn int_or_default(&mut self, spec: &OptionSpec) -> Result<i64, ConfigError> {
        self.int(spec)?.ok_or_else(|| undefaulted(spec))
    }

    /// [`Self::float`] of an option declared with a default.
    fn float_or_default(&mut self, spec: &OptionSpec) -> Result<f64, ConfigError> {
        self.float(spec)?.ok_or_else(|| undefaulted(spec))
    }

    /// [`Self::choice`] of an option declared with a default.
    fn choice_or_default(&mut self, spec: &OptionSpec) -> Result<String, ConfigError> {
        self.choice(spec)?.ok_or_else(|| undefaulted(spec))
    }
}

/// A getter with a default was used on an option declared without one.
fn undefaulted(spec: &OptionSpec) -> ConfigError {
    ConfigError::Missing {
        group: spec.group.to_string(),
        option: spec.name.to_string(),
        why: "it has no value and its declaration no default".into(),
    }
}

/// join.conf alone (read through a shared reference: reading changes nothing).
impl OptionSource for &ConfigFiles {
    fn string(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError> {
        Ok(ConfigFiles::string(self, spec))
    }
    fn bool(&mut self, spec: &OptionSpec) -> Result<bool, ConfigError> {
        ConfigFiles::bool(self, spec)
    }
    fn int(&mut self, spec: &OptionSpec) -> Result<Option<i64>, ConfigError> {
        ConfigFiles::int(self, spec)
    }
    fn float(&mut self, spec: &OptionSpec) -> Result<Option<f64>, ConfigError> {
        ConfigFiles::float(self, spec)
    }
    fn list(&mut self, spec: &OptionSpec) -> Result<Vec<String>, ConfigError> {
        Ok(ConfigFiles::list(self, spec))
    }
    fn choice(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError> {
        ConfigFiles::choice(self, spec)
    }
}
