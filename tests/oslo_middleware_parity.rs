//! Why the request id, body size limit and CORS filters are ours and not
//! tower-http's layers: for the same request, configured the same way,
//! tower-http answers differently from oslo.middleware, whose behaviour
//! nova, clients and operators rely on. Each test sends one request to our
//! filter and to the tower-http layer and asserts the difference.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use novajoin::pipeline::cors::{CorsLayer, CorsPolicy};
use novajoin::pipeline::request_id::{is_valid_request_id, RequestIdLayer, HEADER};
use novajoin::pipeline::sizelimit::SizeLimitLayer;
use novajoin::pipeline::{body, boxed, response, HttpService, ReqBody};
use tower::{Layer, ServiceBuilder, ServiceExt};

/// Our stack's innermost app: 200 "ok".
fn our_app() -> HttpService {
    boxed(tower::service_fn(|_req: Request<ReqBody>| async {
        Ok::<_, Infallible>(response::text(StatusCode::OK, "ok"))
    }))
}

/// The same app for tower-http's layers.
async fn plain_app(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn ours(req: Request<Bytes>) -> Request<ReqBody> {
    req.map(body::full)
}

fn theirs(req: Request<Bytes>) -> Request<Full<Bytes>> {
    req.map(Full::new)
}

/// A response's body as text.
async fn body_text<B: http_body::Body>(resp: Response<B>) -> String
where
    B::Error: std::fmt::Debug,
{
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

const INBOUND_ID: &str = "req-0b8f1a52-3c1d-4e2f-9a7b-6c5d4e3f2a1b";

#[tokio::test]
async fn request_id_oslo_mints_its_own_id_tower_http_echoes_the_callers() {
    let request = || {
        Request::builder()
            .uri("/v1")
            .header(HEADER, INBOUND_ID)
            .body(Bytes::new())
            .unwrap()
    };
    // oslo.middleware: a new local id; the caller's becomes the global id.
    let resp = RequestIdLayer
        .layer(our_app())
        .oneshot(ours(request()))
        .await
        .unwrap();
    let ours_id = resp.headers()[HEADER].to_str().unwrap().to_string();
    assert!(is_valid_request_id(&ours_id), "{ours_id}");
    assert_ne!(ours_id, INBOUND_ID);

    // tower-http: the caller's header is taken as the request id and sent back.
    #[derive(Clone)]
    struct MakeId;
    impl tower_http::request_id::MakeRequestId for MakeId {
        fn make_request_id<B>(
            &mut self,
            _: &Request<B>,
        ) -> Option<tower_http::request_id::RequestId> {
            let id = format!("req-{}", uuid::Uuid::new_v4());
            Some(tower_http::request_id::RequestId::new(
                HeaderValue::from_str(&id).unwrap(),
            ))
        }
    }
    let name = HeaderName::from_static("x-openstack-request-id");
    let svc = ServiceBuilder::new()
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            name.clone(),
            MakeId,
        ))
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(name))
        .service_fn(plain_app);
    let resp = svc.oneshot(theirs(request())).await.unwrap();
    assert_eq!(resp.headers()[HEADER], INBOUND_ID, "tower-http echoes it");
}

#[tokio::test]
async fn sizelimit_oslo_answers_its_fault_naming_the_option_tower_http_plain_text() {
    let request = || {
        Request::builder()
            .method(Method::POST)
            .uri("/v1")
            .header(http::header::CONTENT_LENGTH, "20")
            .body(Bytes::from_static(b"01234567890123456789"))
            .unwrap()
    };
    let resp = SizeLimitLayer::new(10)
        .layer(our_app())
        .oneshot(ours(request()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = body_text(resp).await;
    assert!(
        text.contains("Larger than max_request_body_size (10)"),
        "{text}"
    );
    let fault: serde_json::Value = serde_json::from_str(&text).expect("a JSON fault");
    assert_eq!(fault["overLimit"]["code"], 413, "{fault}");

    let svc = ServiceBuilder::new()
        .layer(tower_http::limit::RequestBodyLimitLayer::new(10))
        .service_fn(
            |req: Request<tower_http::body::Limited<Full<Bytes>>>| async move {
                plain_app(req.map(|_| Full::new(Bytes::new()))).await
            },
        );
    let resp = svc.oneshot(theirs(request())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = body_text(resp).await;
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "{text}"
    );
    assert!(!text.contains("max_request_body_size"), "{text}");
}

fn policy() -> CorsPolicy {
    CorsPolicy {
        allowed_origin: vec!["https://ui.example".into()],
        allow_credentials: false,
        expose_headers: vec![],
        max_age: 3600,
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec![],
    }
}

fn tower_cors() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(HeaderValue::from_static("https://ui.example"))
        .allow_methods([Method::GET, Method::POST])
        .max_age(Duration::from_secs(3600))
}

fn preflight(method: &str) -> Request<Bytes> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1")
        .header("origin", "https://ui.example")
        .header("access-control-request-method", method)
        .body(Bytes::new())
        .unwrap()
}

#[tokio::test]
async fn cors_oslo_refuses_a_preflight_for_a_method_it_does_not_allow_tower_http_allows_the_origin()
{
    let resp = CorsLayer::new(policy())
        .layer(our_app())
        .oneshot(ours(preflight("DELETE")))
        .await
        .unwrap();
    assert!(
        !resp.headers().contains_key("access-control-allow-origin"),
        "{:?}",
        resp.headers()
    );

    let resp = tower_cors()
        .layer(tower::service_fn(plain_app))
        .oneshot(theirs(preflight("DELETE")))
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://ui.example",
        "tower-http does not check the requested method"
    );
}

#[tokio::test]
async fn cors_oslo_allows_only_the_requested_method_tower_http_lists_them_all() {
    let resp = CorsLayer::new(policy())
        .layer(our_app())
        .oneshot(ours(preflight("POST")))
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-methods"], "POST");

    let resp = tower_cors()
        .layer(tower::service_fn(plain_app))
        .oneshot(theirs(preflight("POST")))
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-methods"], "GET,POST");
}
