//! An application on another OpenTelemetry release than fdr-otel's (0.32 here, fdr-otel
//! is on 0.33): its global tracer provider, an SDK with the in-memory exporter, and an OTel
//! middleware making a server span per request in front of a real hyper server on
//! 127.0.0.1 with `ServerLayer`. It compiles, and its spans cannot get `fdr.task_id`
//! (they are another crate's types); fdr-otel must say so, once, on the first request.
//! (Own test binary: the check's result is process-wide.)

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Trace, dump, runtime, serial, serve};
use fdr_otel::{LOG_CATEGORY, ProviderStatus, ServerLayer, TASK_ID_KEY};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyper_util::service::TowerToHyperService;
use opentelemetry_previous::trace::{FutureExt as _, TraceContextExt as _, Tracer as _};
use opentelemetry_previous::{Context, global};
use opentelemetry_sdk_previous::trace::{InMemorySpanExporter, SdkTracerProvider};
use tower::{Layer as _, ServiceExt as _};

const REQUESTS: usize = 3;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

#[test]
fn a_provider_of_another_release_is_reported_missing_once() {
    let _g = serial();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    global::set_tracer_provider(provider.clone());
    assert_eq!(fdr_otel::provider_status(), ProviderStatus::Unchecked);

    let app = ServerLayer::new().layer(tower::service_fn(hello));
    // The application's OTel middleware, on its own OpenTelemetry release.
    let otel = tower::service_fn(move |req: Request<Incoming>| {
        let span = global::tracer("app").start("GET /other");
        let cx = Context::current_with_span(span);
        app.clone().oneshot(req).with_context(cx)
    });
    let rt = runtime();
    let (addr, server) = rt.block_on(serve(TowerToHyperService::new(otel)));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..REQUESTS {
        let req = Request::get(format!("http://{addr}/other"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let body = rt.block_on(async {
            let resp = client.request(req).await.unwrap();
            resp.into_body().collect().await.unwrap().to_bytes()
        });
        assert_eq!(&body[..], b"hello");
    }
    // The application's spans were made and exported, without fdr's attribute.
    let deadline = Instant::now() + Duration::from_secs(5);
    let spans = loop {
        let spans = exporter.get_finished_spans().unwrap();
        if spans.len() >= REQUESTS {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans: {spans:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    server.abort();
    drop(rt);
    assert!(
        spans
            .iter()
            .all(|s| !s.attributes.iter().any(|kv| kv.key.as_str() == TASK_ID_KEY)),
        "{spans:?}"
    );

    assert_eq!(fdr_otel::provider_status(), ProviderStatus::Missing);
    // Asked again, the answer is the same, and the warning is not repeated.
    assert_eq!(fdr_otel::check_provider(), ProviderStatus::Missing);
    let trace = Trace::read(&dump());
    assert_eq!(trace.named("http GET").len(), REQUESTS);
    let warnings: Vec<&String> = trace
        .logs
        .iter()
        .filter(|(_, cat, _)| cat == LOG_CATEGORY)
        .map(|(_, _, m)| m)
        .collect();
    assert_eq!(
        warnings,
        vec![&ProviderStatus::Missing.to_string()],
        "one warning, naming the version and the fix"
    );
    provider.shutdown().unwrap();
}
