//! pipeline.toml: which filters run, in what order, for which path.
//!
//! It plays the part join-api-paste.ini played. The shape:
//!
//! ```toml
//! filters = ["http_proxy_to_wsgi", "request_id", "healthcheck", "sizelimit", "cors"]
//!
//! [[route]]
//! path = "/v1"
//! filters = ["authtoken", "keystonecontext", "policy", "cache"]
//! app = "join"
//!
//! [filter.sizelimit]
//! max_request_body_size = 114688
//! ```
//!
//! Top-level `filters` wrap every request, outermost first; each route adds
//! its own filters inside them, then its app. Options under `[filter.NAME]`
//! win over the same options in join.conf, as paste-section options did.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A mistake in pipeline.toml, with its place and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{}{problem}", place(file, *line))]
pub struct PipelineFileError {
    /// The pipeline file.
    pub file: PathBuf,
    /// 1-based line of the offending item (1 when unknown).
    pub line: usize,
    /// What is wrong and what to do about it.
    pub problem: String,
}

fn place(file: &Path, line: usize) -> String {
    match (file.as_os_str().is_empty(), line) {
        (true, _) => String::new(),
        (false, 0) => format!("{}: ", file.display()),
        (false, n) => format!("{}:{n}: ", file.display()),
    }
}

impl PipelineFileError {
    /// An error of a component being set up (its message names the file
    /// and line itself, e.g. a join.conf value).
    pub fn component(problem: impl std::fmt::Display) -> Self {
        Self {
            file: PathBuf::new(),
            line: 0,
            problem: problem.to_string(),
        }
    }
}

/// A filter name as written, with where it was written.
#[derive(Clone, Debug)]
pub struct NamedAt {
    /// The filter or app name.
    pub name: String,
    /// 1-based line.
    pub line: usize,
}

/// One `[[route]]`.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// Path prefix, e.g. `/v1`.
    pub path: String,
    /// Route filters, outermost first.
    pub filters: Vec<NamedAt>,
    /// The application at the end of the chain.
    pub app: NamedAt,
    /// Line of the route's `path` key.
    pub line: usize,
}

/// A filter option value and its line.
#[derive(Clone, Debug)]
pub struct OptionAt {
    /// The TOML value.
    pub value: toml::Value,
    /// 1-based line.
    pub line: usize,
}

/// The parsed pipeline file.
#[derive(Clone, Debug)]
pub struct PipelineFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Filters applied to every request.
    pub filters: Vec<NamedAt>,
    /// Routes by path prefix, in file order.
    pub routes: Vec<RouteSpec>,
    /// `[filter.NAME]` option tables.
    pub options: BTreeMap<String, BTreeMap<String, OptionAt>>,
}

impl From<super::ConfigError> for PipelineFileError {
    /// A join.conf problem met while building a filter, at the file and
    /// line of the value when the error has them.
    fn from(e: super::ConfigError) -> Self {
        use super::ConfigError as E;
        let (file, line, problem) = match e {
            E::Pipeline(p) => return p,
            E::BadValue {
                file,
                line,
                group,
                option,
                problem,
            } => (file, line, format!("[{group}] {option}: {problem}")),
            E::Syntax {
                file,
                line,
                problem,
            } => (file, line, problem),
            other => (PathBuf::from("join.conf"), 0, other.to_string()),
        };
        PipelineFileError {
            file,
            line,
            problem,
        }
    }
}

impl PipelineFile {
    /// Whether any chain names `filter`.
    pub fn mentions(&self, filter: &str) -> bool {
        self.filters
            .iter()
            .chain(self.routes.iter().flat_map(|r| r.filters.iter()))
            .any(|f| f.name == filter)
    }

    /// The same pipeline with `authtoken` followed by `keystonecontext`
    /// replaced by `noauth` in every chain (what `auth_strategy = noauth`
    /// meant for the original's paste pipeline). Other chains are kept.
    pub fn with_noauth(&self) -> Self {
        let swap = |filters: &[NamedAt]| {
            let mut out: Vec<NamedAt> = Vec::with_capacity(filters.len());
            let mut i = 0;
            while i < filters.len() {
                let pair = filters[i].name == "authtoken"
                    && filters
                        .get(i + 1)
                        .is_some_and(|f| f.name == "keystonecontext");
                if pair {
                    out.push(NamedAt {
                        name: "noauth".into(),
                        line: filters[i].line,
                    });
                    i += 2;
                } else {
                    out.push(filters[i].clone());
                    i += 1;
                }
            }
            out
        };
        let mut file = self.clone();
        file.filters = swap(&self.filters);
        for route in &mut file.routes {
            route.filters = swap(&route.filters);
        }
        file
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    filters: Vec<Spanned<String>>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    filter: BTreeMap<String, BTreeMap<String, Spanned<toml::Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: Spanned<String>,
    #[serde(default)]
    filters: Vec<Spanned<String>>,
    app: Spanned<String>,
}

fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

impl PipelineFile {
    /// Reads and parses a pipeline file. Name checks happen when the stack is
    /// built, against the filters this binary has.
    pub fn load(path: &Path) -> Result<Self, PipelineFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineFileError {
            file: path.to_path_buf(),
            line: 1,
            problem: format!(
                "cannot read the pipeline file: {e}; set [DEFAULT] api_paste_config to its path"
            ),
        })?;
        Self::parse(path, &text)
    }

    /// Parses pipeline text; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PipelineFileError> {
        let err = |line: usize, problem: String| PipelineFileError {
            file: path.to_path_buf(),
            line,
            problem,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s)).unwrap_or(1);
            err(line, e.message().to_string())
        })?;
        let named = |s: &Spanned<String>| NamedAt {
            name: s.get_ref().clone(),
            line: line_of(text, s.span()),
        };
        let mut routes = Vec::new();
        for r in &raw.route {
            let line = line_of(text, r.path.span());
            let p = r.path.get_ref();
            if !p.starts_with('/') {
                return Err(err(line, format!("route path {p:?} must start with '/'")));
            }
            if routes.iter().any(|x: &RouteSpec| x.path == *p) {
                return Err(err(
                    line,
                    format!("route path {p:?} is defined twice; keep one [[route]]"),
                ));
            }
            routes.push(RouteSpec {
                path: p.trim_end_matches('/').to_string(),
                filters: r.filters.iter().map(named).collect(),
                app: named(&r.app),
                line,
            });
        }
        if routes.is_empty() {
            return Err(err(
                1,
                "no [[route]] defined; add one with path = \"/v1\" and app = \"join\"".into(),
            ));
        }
        let options = raw
            .filter
            .iter()
            .map(|(f, opts)| {
                let o = opts
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            OptionAt {
                                value: v.get_ref().clone(),
                                line: line_of(text, v.span()),
                            },
                        )
                    })
                    .collect();
                (f.clone(), o)
            })
            .collect();
        Ok(PipelineFile {
            path: path.to_path_buf(),
            filters: raw.filters.iter().map(named).collect(),
            routes,
            options,
        })
    }

    /// An error at a line of this file.
    pub fn error(&self, line: usize, problem: impl Into<String>) -> PipelineFileError {
        PipelineFileError {
            file: self.path.clone(),
            line,
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noauth_replaces_the_keystone_pair_in_every_chain() {
        let text = "filters = [\"request_id\"]\n\n[[route]]\npath = \"/v1\"\n\
                    filters = [\"authtoken\", \"keystonecontext\", \"policy\"]\napp = \"join\"\n";
        let p = PipelineFile::parse(Path::new("p.toml"), text).unwrap();
        assert!(!p.mentions("noauth"));
        let n = p.with_noauth();
        let names: Vec<_> = n.routes[0]
            .filters
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["noauth", "policy"]);
        assert_eq!(n.routes[0].filters[0].line, p.routes[0].filters[0].line);
        assert!(n.mentions("noauth") && !n.mentions("authtoken"));
        assert_eq!(n.filters[0].name, "request_id");
    }

    #[test]
    fn parses_routes_and_options_with_lines() {
        let text = "filters = [\"request_id\"]\n\n[[route]]\npath = \"/v1/\"\nfilters = [\"noauth\"]\napp = \"join\"\n\n[filter.sizelimit]\nmax_request_body_size = 10\n";
        let p = PipelineFile::parse(Path::new("p.toml"), text).unwrap();
        assert_eq!(p.routes[0].path, "/v1");
        assert_eq!(p.routes[0].filters[0].line, 5);
        assert_eq!(p.options["sizelimit"]["max_request_body_size"].line, 9);
    }

    #[test]
    fn unknown_keys_and_bad_toml_name_the_line() {
        let e = PipelineFile::parse(
            Path::new("p.toml"),
            "[[route]]\npath = \"/v1\"\napp = \"join\"\nfilterz = []\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.to_string().contains("filterz"), "{e}");
        let e = PipelineFile::parse(Path::new("p.toml"), "[[route]\n").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:1:"), "{e}");
    }

    #[test]
    fn a_file_without_routes_is_refused() {
        let e = PipelineFile::parse(Path::new("p.toml"), "filters = []\n").unwrap_err();
        assert!(e.problem.contains("[[route]]"));
    }
}
