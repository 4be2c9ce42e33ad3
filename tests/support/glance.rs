//! A small glance test double: `GET /v2/images/{id}` from an in-memory map,
//! requiring `X-Auth-Token`, counting calls. (Glance cannot run here; one
//! call with a simple format does not warrant more.)

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The double's shared state.
#[derive(Default)]
pub struct GlanceState {
    /// Images by id: the full v2 image document.
    pub images: Mutex<HashMap<String, serde_json::Value>>,
    /// GET calls received.
    pub calls: AtomicUsize,
    /// Tokens seen (to check the service token was sent).
    pub tokens: Mutex<Vec<String>>,
}

/// A running glance double.
pub struct GlanceDouble {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// State.
    pub state: Arc<GlanceState>,
    task: tokio::task::JoinHandle<()>,
}

impl GlanceDouble {
    /// Starts on a free loopback port in the current tokio runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(GlanceState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(&st, req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        GlanceDouble { url, state, task }
    }

    /// Adds an image with the given custom properties.
    pub fn add_image(&self, id: &str, properties: serde_json::Value) {
        let mut doc = serde_json::json!({
            "id": id, "name": format!("image-{id}"), "status": "active", "visibility": "public",
            "container_format": "bare", "disk_format": "qcow2", "size": 1024, "tags": [],
            "self": format!("/v2/images/{id}"), "file": format!("/v2/images/{id}/file"), "schema": "/v2/schemas/image",
        });
        if let (Some(d), Some(p)) = (doc.as_object_mut(), properties.as_object()) {
            for (k, v) in p {
                d.insert(k.clone(), v.clone());
            }
        }
        self.state
            .images
            .lock()
            .unwrap()
            .insert(id.to_string(), doc);
    }
}

impl Drop for GlanceDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(st: &GlanceState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    st.calls.fetch_add(1, Ordering::SeqCst);
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    };
    let Some(token) = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
    else {
        return reply(
            StatusCode::UNAUTHORIZED,
            "{\"message\": \"no token\"}".into(),
        );
    };
    st.tokens.lock().unwrap().push(token.to_string());
    let Some(id) = req.uri().path().strip_prefix("/v2/images/") else {
        return reply(StatusCode::NOT_FOUND, "{}".into());
    };
    match st.images.lock().unwrap().get(id) {
        Some(doc) => reply(StatusCode::OK, doc.to_string()),
        None => reply(
            StatusCode::NOT_FOUND,
            format!("{{\"message\": \"No image found with ID {id}\"}}"),
        ),
    }
}
