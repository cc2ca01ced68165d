//! A message ingestion API on tokio: partners POST messages, the service decodes them
//! (`codec`), validates and acknowledges. Current partners send the `v2` format, decoded in
//! memory.
//!
//! The fault is not in the handler: a partner still on the `v1` format starts sending, and
//! `codec::legacy`, written for a batch tool, resolves the message's code page with a
//! blocking call to the dictionary service. Every `v1` message blocks its async worker for
//! the call's few milliseconds, from a file nobody reading the handler would look at.

pub(crate) mod codec;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::svc::backend::Backend;
use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let dictionary = Backend::start(
        "dictionary-service",
        Duration::from_millis(2),
        Duration::from_millis(4),
    )?;
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let dict = dictionary.addr;
    rt.spawn(http::serve(listener, "http POST /ingest", move |req| {
        handle(dict, req)
    }));
    let spec = Spec {
        clients: 8,
        think: Duration::from_millis(1),
    };
    let legacy_partner = Arc::new(AtomicBool::new(false));
    let partner = legacy_partner.clone();
    let (report, bytes) = crate::svc::incident(
        ctx,
        || legacy_partner.store(true, Ordering::Relaxed),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(move |c, n| {
                    // Once the legacy partner is on, half the clients are its.
                    let body = if partner.load(Ordering::Relaxed) && c % 2 == 0 {
                        format!("v1:cp1252:order {n} from partner {c}")
                    } else {
                        format!("v2:order {n} from partner {c}")
                    };
                    Request::post("http://ingest/ingest")
                        .body(Full::new(Bytes::from(body)))
                        .expect("a valid request")
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "legacy_codec", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(dictionary: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let Some(raw) = http::body(req).await else {
        return http::error(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let message = match codec::decode(&raw, dictionary) {
        Ok(m) => m,
        Err(e) => return http::error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    let valid = fdr::with_region("validate", || {
        message.text.starts_with("order") && !message.text.is_empty()
    });
    if !valid {
        return http::error(StatusCode::UNPROCESSABLE_ENTITY, "not an order");
    }
    fdr::log!(
        "ingest",
        "{} message of {} bytes",
        message.format,
        message.text.len()
    );
    http::ok("ack")
}
