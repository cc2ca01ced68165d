//! HTTP/1.1 serving with hyper, the way a service wires fdr in: each connection is a traced
//! task (`fdr::spawn`), each request a traced future (`.traced(name)`).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use fdr::FdrFutureExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A response body.
pub(crate) type Body = Full<Bytes>;

/// Accepts connections on `listener` forever; each request is handled by `handler` as a
/// traced task named `request_name`.
pub(crate) async fn serve<H, F>(listener: TcpListener, request_name: &'static str, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or a reset before accept: wait, then accept again.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |req| {
            let response = handler(req);
            async move { Ok::<_, Infallible>(response.await) }.traced(request_name)
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        fdr::spawn("http connection", async move {
            let _ = connection.await;
        });
    }
}

/// `200 OK` with `body`.
pub(crate) fn ok(body: impl Into<Bytes>) -> Response<Body> {
    Response::new(Full::new(body.into()))
}

/// An error status with a short reason.
pub(crate) fn error(status: StatusCode, reason: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(reason.to_string())));
    *r.status_mut() = status;
    r
}

/// The request's body, whole (requests here are small).
pub(crate) async fn body(req: Request<Incoming>) -> Option<Bytes> {
    Some(req.into_body().collect().await.ok()?.to_bytes())
}

/// The value of `key` in the request's query string.
pub(crate) fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}
