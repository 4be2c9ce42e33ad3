//! The vendordata REST service: build the pipeline from join.conf and
//! pipeline.toml, listen, and serve HTTP until told to stop
//! (`novajoin server` starts it through the command line's daemon path).

pub mod lingering_close;
pub mod options;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, UnixListener};

use crate::config::pipeline_file::{PipelineFile, PipelineFileError};
use crate::config::{ConfigError, ConfigFiles, OptionSource};
use crate::health::HealthRegistry;
use crate::pipeline::body::BoxError;
use crate::pipeline::build::BuildContext;
use crate::pipeline::extensions::{AccessNotes, PeerAddr};
use crate::pipeline::{builder, HttpService, RespBody};
use crate::server::options::{API_PASTE_CONFIG, AUTH_STRATEGY, JOIN_LISTEN, JOIN_LISTEN_PORT};
use lingering_close::LingeringClose;
use tower::ServiceExt;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// join.conf is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// pipeline.toml is wrong, or a component could not be set up.
    #[error(transparent)]
    Pipeline(#[from] PipelineFileError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}; check [DEFAULT] join_listen and join_listen_port")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path (`join_listen = unix:/run/novajoin/join.sock`).
    Unix(PathBuf),
}

/// The pipeline file named by `api_paste_config`. An old
/// `join-api-paste.ini` path is mapped to `pipeline.toml` beside it.
pub fn pipeline_path(cfg: &ConfigFiles) -> PathBuf {
    let p = PathBuf::from(cfg.string(&API_PASTE_CONFIG).unwrap_or_default());
    if p.extension().is_some_and(|e| e == "ini") {
        let toml = p.with_file_name("pipeline.toml");
        tracing::warn!(old = %p.display(), new = %toml.display(),
            "api_paste_config names a paste .ini file; novajoin reads pipeline.toml from the same directory");
        return toml;
    }
    p
}

/// The listening address from `join_listen` / `join_listen_port`.
pub fn listen_addr(cfg: &ConfigFiles) -> Result<ListenAddr, ConfigError> {
    let host = cfg.string(&JOIN_LISTEN).unwrap_or_default();
    if let Some(path) = host.strip_prefix("unix:") {
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let mut src = cfg;
    let port = src.int_or_default(&JOIN_LISTEN_PORT)? as u16;
    let ip: std::net::IpAddr = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| {
            let at = cfg.raw(&JOIN_LISTEN);
            ConfigError::BadValue {
                file: at.map(|a| a.file.clone()).unwrap_or_default(),
                line: at.map(|a| a.line).unwrap_or(0),
                group: "DEFAULT".into(),
                option: "join_listen".into(),
                problem: format!("{host:?} is not an IP address (or unix:/path)"),
            }
        })?;
    Ok(ListenAddr::Tcp(SocketAddr::new(ip, port)))
}

/// Builds the whole request stack from join.conf and the pipeline file.
pub fn build_stack(
    cfg: Arc<ConfigFiles>,
    health: HealthRegistry,
) -> Result<HttpService, ServerError> {
    let path = pipeline_path(&cfg);
    let file = PipelineFile::load(&path)?;
    let noauth = cfg.choice(&AUTH_STRATEGY)?.as_deref() == Some("noauth");
    let file = if noauth && !file.mentions("noauth") {
        // auth_strategy = noauth with the default pipeline: the keystone
        // filters give way to noauth, as the original's auth_strategy meant.
        tracing::warn!("auth_strategy = noauth: tokens are NOT validated; development only");
        file.with_noauth()
    } else {
        file
    };
    Ok(builder::build(
        &file,
        &BuildContext {
            config: cfg,
            health,
        },
    )?)
}

/// The server, set up and listening; [`Server::run`] serves.
pub struct Server {
    stack: HttpService,
    addr: ListenAddr,
    listener: Listener,
}

impl Server {
    /// Builds the stack from join.conf and the pipeline file, and opens the
    /// listening socket.
    pub async fn start(cfg: Arc<ConfigFiles>) -> Result<Self, ServerError> {
        let health = HealthRegistry::default();
        let stack = build_stack(cfg.clone(), health)?;
        let addr = listen_addr(&cfg)?;
        let listener = Listener::bind(&addr).await?;
        Ok(Self {
            stack,
            addr,
            listener,
        })
    }

    /// Serves until `shutdown` completes, then drains in-flight requests
    /// (up to 30 s).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        serve(self.stack, self.listener, &self.addr, shutdown).await;
    }
}

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// A bound listening socket.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn bind(addr: &ListenAddr) -> Result<Self, ServerError> {
        match addr {
            ListenAddr::Tcp(a) => TcpListener::bind(a)
                .await
                .map(Listener::Tcp)
                .map_err(|source| ServerError::Listen {
                    addr: a.to_string(),
                    source,
                }),
            ListenAddr::Unix(p) => {
                // A stale socket from a previous run would make bind fail.
                let _ = std::fs::remove_file(p);
                UnixListener::bind(p)
                    .map(Listener::Unix)
                    .map_err(|source| ServerError::Listen {
                        addr: p.display().to_string(),
                        source,
                    })
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_default(),
        }
    }

    async fn accept(&self) -> std::io::Result<(Box<dyn IoStream>, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(t) => {
                let (s, a) = t.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), Some(a)))
            }
            Listener::Unix(u) => {
                let (s, _) = u.accept().await?;
                Ok((Box::new(s), None))
            }
        }
    }
}

/// Serves `stack` on `listener` until `shutdown` completes, then drains
/// in-flight requests (up to 30 s).
async fn serve(
    stack: HttpService,
    listener: Listener,
    addr: &ListenAddr,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tracing::info!(listen = %listener.describe(), version = env!("CARGO_PKG_VERSION"), "novajoin server ready");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let responder = Arc::new(Responder {
        stack,
        // Handles are resolved at first use, once the recorder is installed.
        metrics: crate::metrics::RequestMetrics::new(),
    });
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let responder = responder.clone();
        let peer = PeerAddr::new(peer);
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let responder = responder.clone();
            let peer = peer.clone();
            async move { Ok::<_, Infallible>(responder.handle(req, peer).await) }
        });
        let conn = graceful.watch(
            builder
                .serve_connection(TokioIo::new(LingeringClose::new(io)), svc)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(DRAIN) => tracing::warn!("in-flight requests still running after {}s; exiting", DRAIN.as_secs()),
    }
    if let ListenAddr::Unix(p) = addr {
        let _ = std::fs::remove_file(p);
    }
}

/// A byte stream a connection is served on (TCP or Unix).
trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> IoStream for T {}

/// What every connection answers its requests with; shared, so a request
/// takes one reference count rather than one per part.
struct Responder {
    stack: HttpService,
    metrics: crate::metrics::RequestMetrics,
}

impl Responder {
    /// Runs one request through the stack, writes the access log line and
    /// records the request metrics.
    async fn handle(&self, req: Request<Incoming>, peer: PeerAddr) -> Response<RespBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut req = req.map(|b| b.map_err(BoxError::new).boxed_unsync());
        let peer_ip = peer.ip.clone();
        req.extensions_mut().insert(peer);
        let resp = match self.stack.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let latency = started.elapsed();
        let request_id = resp
            .headers()
            .get(crate::pipeline::request_id::HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let notes = resp.extensions().get::<AccessNotes>();
        let instance = notes.and_then(|n| n.instance_id.as_deref()).unwrap_or("-");
        let cache_outcome = notes.and_then(|n| n.cache);
        let cache = cache_outcome
            .map(crate::metrics::cache_label)
            .unwrap_or("-");
        let global_request_id = notes
            .and_then(|n| n.global_request_id.as_deref())
            .unwrap_or("-");
        let origin = notes.and_then(|n| n.origin.as_ref());
        let client = origin
            .and_then(|o| o.remote_addr.as_deref())
            .or(peer_ip.as_deref())
            .unwrap_or("-");
        let scheme = origin.map(|o| o.scheme.as_str()).unwrap_or("-");
        let host = origin.and_then(|o| o.host.as_deref()).unwrap_or("-");
        crate::logging::access_log::record(&crate::logging::AccessEntry {
            method: method.as_str(),
            path: &path,
            status: resp.status().as_u16(),
            latency: crate::logging::LatencyText::new(latency),
            request_id,
            global_request_id,
            instance_id: instance,
            cache,
            client,
            scheme,
            host,
        });
        self.metrics
            .record(&path, &method, resp.status(), latency, cache_outcome);
        resp
    }
}
