//! Assembles the tower stack from a parsed pipeline file.

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::collections::HashSet;
use std::sync::Arc;
use tower::{Service, ServiceExt};

use http::{Request, Response, StatusCode};

use super::build::{BuildContext, FilterFactory, FilterOptions};
use super::registry::{self, Capability};
use super::{boxed, response, HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::{NamedAt, PipelineFile, PipelineFileError};

/// Checks a pipeline file against the filters this binary has, and builds
/// the stack. Every mistake names the file, the line and the fix.
pub async fn build(
    file: &PipelineFile,
    ctx: &BuildContext,
) -> Result<HttpService, PipelineFileError> {
    let filters = registry::filters();
    let apps = registry::apps();
    let mut outer_factories: Vec<FilterFactory> = Vec::new();
    let mut provided: Vec<Capability> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for f in &file.filters {
        outer_factories.push(build_filter(file, f, &filters, &mut provided, &mut seen, ctx).await?);
    }
    let mut routes = Vec::new();
    for route in &file.routes {
        let mut route_provided = provided.clone();
        let mut route_seen = seen.clone();
        let mut factories = Vec::new();
        for f in &route.filters {
            factories.push(
                build_filter(file, f, &filters, &mut route_provided, &mut route_seen, ctx).await?,
            );
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
        check_requires(file, &route.app, app.requires, &route_provided)?;
        let opts = FilterOptions::new(
            app.name,
            file.path.clone(),
            file.options.get(app.name).cloned().unwrap_or_default(),
            ctx.config.clone(),
        );
        let mut svc = (app.build)(opts, ctx.clone()).await?;
        for f in factories.iter().rev() {
            svc = f(svc);
        }
        routes.push((route.path.clone(), svc));
    }
    let mut svc = boxed(Router {
        routes: Arc::new(routes),
    });
    for f in outer_factories.iter().rev() {
        svc = f(svc);
    }
    Ok(svc)
}

async fn build_filter(
    file: &PipelineFile,
    at: &NamedAt,
    known: &[registry::FilterEntry],
    provided: &mut Vec<Capability>,
    seen: &mut HashSet<String>,
    ctx: &BuildContext,
) -> Result<FilterFactory, PipelineFileError> {
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
    if !seen.insert(at.name.clone()) {
        return Err(file.error(
            at.line,
            format!(
                "filter '{}' appears twice in this request's path; keep one",
                at.name
            ),
        ));
    }
    check_requires(file, at, entry.requires, provided)?;
    let Some(build) = entry.build else {
        return Err(file.error(at.line, format!(
            "filter '{}' is not available in this build of novajoin; remove it from the pipeline", at.name)));
    };
    let opts = FilterOptions::new(
        entry.name,
        file.path.clone(),
        file.options.get(entry.name).cloned().unwrap_or_default(),
        ctx.config.clone(),
    );
    let factory = build(opts, ctx.clone()).await?;
    provided.extend_from_slice(entry.provides);
    Ok(factory)
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
