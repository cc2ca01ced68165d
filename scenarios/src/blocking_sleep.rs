//! A notification API on tokio: each request forwards a message to the delivery service
//! (async TCP) and retries when it answers "busy", with a backoff between attempts.
//!
//! The fault: the backoff is `std::thread::sleep`, copied from a synchronous client. While
//! the delivery service sheds load (it answers "busy" to a third of the requests for a
//! while), handlers put their worker thread to sleep between attempts, and every task queued
//! on that worker waits too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::svc::backend::{self, Backend};
use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// Attempts per message.
const ATTEMPTS: u32 = 4;
/// The pause before the first retry (doubled each time).
const BACKOFF: Duration = Duration::from_millis(4);

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let delivery = Backend::start(
        "delivery-service",
        Duration::from_micros(200),
        Duration::from_micros(600),
    )?;
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let d = delivery.addr;
    rt.spawn(http::serve(listener, "http POST /notify", move |req| {
        handle(d, req)
    }));
    let spec = Spec {
        clients: 8,
        think: Duration::from_millis(1),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || delivery.set_errors_per_mille(330),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::post(format!("http://notify/notify?user={c}"))
                        .body(Full::new(Bytes::from(format!("message {n}"))))
                        .expect("a valid request")
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "blocking_sleep", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(delivery: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let user = http::query(&req, "user").unwrap_or("0").to_string();
    let Some(message) = http::body(req).await else {
        return http::error(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let request = format!("DELIVER {user} {}", message.len());
    let mut backoff = BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match backend::call(delivery, &request).await {
            Ok(reply) if reply.starts_with("OK") => {
                fdr::log!("http", "POST /notify user={user} attempt={attempt}");
                return http::ok("queued");
            }
            _ if attempt < ATTEMPTS => {
                std::thread::sleep(backoff); // FAULT: blocking-sleep
                backoff *= 2;
            }
            _ => {}
        }
    }
    http::error(StatusCode::SERVICE_UNAVAILABLE, "delivery busy")
}
