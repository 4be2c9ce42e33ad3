//! `novajoin server`: the vendordata REST service nova calls, started
//! through the daemon path.

use std::future::Future;
use std::sync::Arc;

use super::daemon::{self, Daemon};
use super::ConfigArgs;
use crate::config::ConfigFiles;
use crate::metrics::MetricsRole;
use crate::server::{Server, ServerError};

/// Runs the server from the command line; returns the exit status.
pub fn run_cli(args: ConfigArgs) -> i32 {
    daemon::run::<Server>(&args)
}

impl Daemon for Server {
    type Error = ServerError;
    const NAME: &'static str = "novajoin";
    const METRICS: MetricsRole = MetricsRole::Server;

    fn start(cfg: Arc<ConfigFiles>) -> impl Future<Output = Result<Self, ServerError>> {
        Server::start(cfg)
    }

    async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        Server::run(self, shutdown).await;
        Ok(())
    }
}
