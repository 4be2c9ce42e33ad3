//! The declared join.conf options: name, group, type, default and help.
//!
//! Every option the service reads is declared once, by the component that
//! reads it, as an [`OptionSpec`]. The loader uses the declarations to
//! validate values and to warn about unknown options; `novajoin
//! config-sample` prints them.

/// The type of an option's value, with its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// Free text.
    Str,
    /// Text that is a secret: never echoed in errors or the sample.
    Secret,
    /// An integer with inclusive bounds.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A float (seconds and the like), non-negative.
    Float,
    /// oslo.config boolean: true/false, yes/no, on/off, 1/0 (any case).
    Bool,
    /// Comma-separated list.
    List,
    /// A TCP port, 0..=65535.
    Port,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// May appear several times (oslo `MultiStrOpt`); values accumulate.
    Multi,
}

/// One declared option.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// Section name (`DEFAULT`, `keystone_authtoken`, ...).
    pub group: &'static str,
    /// Option name as written in join.conf.
    pub name: &'static str,
    /// Value type.
    pub kind: OptionKind,
    /// Default as it would be written in join.conf; `None` means unset.
    pub default: Option<&'static str>,
    /// Help text for the sample configuration.
    pub help: &'static str,
    /// Older names that are still accepted (oslo `deprecated_name`).
    pub deprecated_names: &'static [&'static str],
}

impl OptionSpec {
    /// Declares an option with no deprecated names.
    pub const fn new(
        group: &'static str,
        name: &'static str,
        kind: OptionKind,
        default: Option<&'static str>,
        help: &'static str,
    ) -> Self {
        Self {
            group,
            name,
            kind,
            default,
            help,
            deprecated_names: &[],
        }
    }

    /// The same option, also accepted under older names.
    pub const fn with_deprecated(mut self, names: &'static [&'static str]) -> Self {
        self.deprecated_names = names;
        self
    }
}

/// A section of options that some part of the service owns.
pub type OptionGroup = &'static [OptionSpec];

/// The option groups a program declares: what [`ConfigFiles::validate`]
/// checks a join.conf against and `novajoin config-sample` prints. The
/// service's own list is [`crate::option_catalog::CATALOG`]; this module
/// knows no component.
///
/// [`ConfigFiles::validate`]: super::ConfigFiles::validate
#[derive(Clone, Copy, Debug)]
pub struct Catalog(pub &'static [OptionGroup]);

impl Catalog {
    /// The groups, in the order the sample prints them.
    pub fn groups(&self) -> &'static [OptionGroup] {
        self.0
    }

    /// Looks an option up by group and name (or a deprecated name).
    pub fn find(&self, group: &str, name: &str) -> Option<&'static OptionSpec> {
        self.0
            .iter()
            .flat_map(|g| g.iter())
            .find(|o| o.group == group && (o.name == name || o.deprecated_names.contains(&name)))
    }

    /// Whether any option is declared for this section.
    pub fn is_known_group(&self, group: &str) -> bool {
        self.0
            .iter()
            .flat_map(|g| g.iter())
            .any(|o| o.group == group)
    }
}
