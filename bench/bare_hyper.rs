//! The bench's baseline: a bare hyper server that answers every request
//! with the same status, headers and body (the bytes novajoin's cache-hit
//! path answers), doing nothing else. `bench/run.sh` compares novajoin's
//! requests/s and latency with this server's, measured in the same run.
//!
//! ```text
//! bare-hyper --listen 127.0.0.1:0 --body-file answer.json \
//!     --header 'content-type: application/json'
//! ```
//! Prints `bare-hyper listening on http://ADDR` when ready.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

fn usage() -> ! {
    eprintln!("usage: bare-hyper --listen ADDR --body-file PATH [--header 'name: value']...");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut body = Bytes::new();
    let mut headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = v.parse().unwrap_or_else(|_| usage()),
            "--body-file" => body = Bytes::from(std::fs::read(&v).expect("read the body file")),
            "--header" => {
                let (k, val) = v.split_once(':').unwrap_or_else(|| usage());
                headers.push((
                    k.trim().parse().expect("header name"),
                    val.trim().parse().expect("header value"),
                ));
            }
            _ => usage(),
        }
    }
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    println!(
        "bare-hyper listening on http://{}",
        listener.local_addr().expect("addr")
    );
    let headers = std::sync::Arc::new(headers);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (body, headers) = (body.clone(), headers.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (body, headers) = (body.clone(), headers.clone());
                async move {
                    // Read the request body, as any real handler must.
                    let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                    let mut r = Response::new(Full::new(body));
                    for (k, v) in headers.iter() {
                        r.headers_mut().insert(k.clone(), v.clone());
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
