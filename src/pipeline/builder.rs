//! Assembles the tower stack from a parsed pipeline file.

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::collections::HashSet;
use std::sync::Arc;
use tower::{Layer, Service, ServiceExt};

use http::{Request, Response, StatusCode};

use super::build::{BuildContext, FilterOptions};
use super::registry::{self, Capability};
use super::{boxed, response, HttpFuture, HttpLayer, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::{NamedAt, PipelineFile, PipelineFileError};

/// Checks a pipeline file against the filters this binary has, and builds
/// the stack. Every mistake names the file, the line and the fix.
///
/// The stack reads in pipeline order: the outer filters' layers, then a
/// router whose routes are each their own filters' layers around the app.
pub fn build(file: &PipelineFile, ctx: &BuildContext) -> Result<HttpService, PipelineFileError> {
    let filters = registry::filters();
    let apps = registry::apps();
    let mut outer = Chain::default();
    for f in &file.filters {
        outer.push(file, f, &filters, ctx)?;
    }
    let mut routes = Vec::new();
    for route in &file.routes {
        let mut chain = outer.for_route();
        for f in &route.filters {
            chain.push(file, f, &filters, ctx)?;
        }
        let Some(app) = apps.iter().find(|a| a.name == route.app.name) else {
            let known: Vec<_> = apps.iter().map(|a| a.name).collect();
            return Err(file.error(
                route.app.line,
                format!(
                    "unknown app '{}'; known apps: {}",
                    route.app.name,
                    known.join(", ")
                ),
            ));
        };
        check_requires(file, &route.app, app.requires, &chain.provided)?;
        let app_svc = (app.build)(options_for(file, app.name, ctx), ctx)?;
        routes.push((route.path.clone(), chain.wrap(app_svc)));
    }
    let router = boxed(Router {
        routes: Arc::new(routes),
    });
    Ok(outer.wrap(router))
}

/// Layers in pipeline order (outermost first), with what they provide and
/// which names they used.
#[derive(Default)]
struct Chain {
    layers: Vec<HttpLayer>,
    provided: Vec<Capability>,
    seen: HashSet<String>,
}

impl Chain {
    /// A route's chain: what the outer filters provide, none of their
    /// layers (those wrap the router).
    fn for_route(&self) -> Chain {
        Chain {
            layers: Vec::new(),
            provided: self.provided.clone(),
            seen: self.seen.clone(),
        }
    }

    /// Checks and builds the filter named at `at`, innermost so far.
    fn push(
        &mut self,
        file: &PipelineFile,
        at: &NamedAt,
        known: &[registry::FilterEntry],
        ctx: &BuildContext,
    ) -> Result<(), PipelineFileError> {
        let Some(entry) = known.iter().find(|e| e.name == at.name) else {
            let names: Vec<_> = known.iter().map(|e| e.name).collect();
            return Err(file.error(
                at.line,
                format!(
                    "unknown filter '{}'; known filters: {}",
                    at.name,
                    names.join(", ")
                ),
            ));
        };
        if !self.seen.insert(at.name.clone()) {
            return Err(file.error(
                at.line,
                format!(
                    "filter '{}' appears twice in this request's path; keep one",
                    at.name
                ),
            ));
        }
        check_requires(file, at, entry.requires, &self.provided)?;
        let Some(build) = entry.build else {
            return Err(file.error(at.line, format!(
                "filter '{}' is not available in this build of novajoin; remove it from the pipeline", at.name)));
        };
        self.layers
            .push(build(options_for(file, entry.name, ctx), ctx)?);
        self.provided.extend_from_slice(entry.provides);
        Ok(())
    }

    /// `inner` behind every layer: the first one pushed is outermost.
    fn wrap(&self, inner: HttpService) -> HttpService {
        self.layers
            .iter()
            .rev()
            .fold(inner, |svc, layer| layer.layer(svc))
    }
}

/// The options pipeline.toml gives `name`, over join.conf's.
fn options_for(file: &PipelineFile, name: &str, ctx: &BuildContext) -> FilterOptions {
    FilterOptions::new(
        name,
        file.path.clone(),
        file.options.get(name).cloned().unwrap_or_default(),
        ctx.config.clone(),
    )
}

fn check_requires(
    file: &PipelineFile,
    at: &NamedAt,
    requires: &[Capability],
    provided: &[Capability],
) -> Result<(), PipelineFileError> {
    for need in requires {
        if !provided.contains(need) {
            return Err(file.error(
                at.line,
                format!(
                    "'{}' needs {} in front of it; put {} earlier in the list (outermost first)",
                    at.name,
                    need.provided_by(),
                    need.provided_by()
                ),
            ));
        }
    }
    Ok(())
}

/// Dispatches on path prefix, as paste's urlmap did.
#[derive(Clone)]
struct Router {
    routes: Arc<Vec<(String, HttpService)>>,
}

impl Service<Request<ReqBody>> for Router {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> HttpFuture {
        let path = req.uri().path();
        let found = self
            .routes
            .iter()
            .filter(|(prefix, _)| {
                prefix.is_empty()
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, svc)| svc);
        match found {
            Some(svc) => Box::pin(svc.clone().oneshot(req)),
            None => {
                let path = path.to_string();
                Box::pin(async move {
                    // urlmap's answer, CRLF line endings included.
                    Ok(response::text(
                        StatusCode::NOT_FOUND,
                        format!(
                            "404 Not Found\r\nThe resource could not be found.\r\n{path}\r\n\r\n"
                        ),
                    ))
                })
            }
        }
    }
}
