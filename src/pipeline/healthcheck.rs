//! The `healthcheck` filter (in progress).

use futures::future::BoxFuture;

use super::registry::{BuildContext, FilterFactory, FilterOptions};
use crate::config::pipeline_file::PipelineFileError;

/// Builds the filter from its options.
pub fn build(opts: FilterOptions, _ctx: BuildContext) -> BoxFuture<'static, Result<FilterFactory, PipelineFileError>> {
    Box::pin(async move {
        opts.finish()?;
        Err(PipelineFileError { file: "pipeline.toml".into(), line: 0, problem: "healthcheck: not built yet".into() })
    })
}
