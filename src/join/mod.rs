//! The vendordata join handler (in progress).

use futures::future::BoxFuture;

use crate::config::pipeline_file::PipelineFileError;
use crate::pipeline::registry::{BuildContext, FilterOptions};
use crate::pipeline::HttpService;

/// Builds the `join` app.
pub fn build_app(opts: FilterOptions, _ctx: BuildContext) -> BoxFuture<'static, Result<HttpService, PipelineFileError>> {
    Box::pin(async move {
        opts.finish()?;
        Err(PipelineFileError { file: "pipeline.toml".into(), line: 0, problem: "join: not built yet".into() })
    })
}
