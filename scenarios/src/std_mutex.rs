//! An API gateway on tokio. Every request needs a token for the upstream API; the gateway
//! caches it in a `std::sync::Mutex` and, when it has expired, the request that notices
//! fetches a new one from the auth service with a blocking client while holding the lock.
//! With a TTL of minutes that is one slow request now and then.
//!
//! The fault: a configuration push sets the token TTL to `2`, meant as seconds and read as
//! milliseconds, so the token is refreshed under the lock all the time. Each refresh blocks
//! its worker on the auth service for a few milliseconds, and every other request blocks on
//! the std lock behind it, which fdr's locks do not see.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::svc::backend::Backend;
use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// The auth service's response time.
const AUTH_LATENCY: (Duration, Duration) = (Duration::from_millis(2), Duration::from_millis(4));

struct Token {
    value: String,
    expires: Instant,
}

struct Gateway {
    token: Mutex<Token>,
    auth: SocketAddr,
    ttl_ms: AtomicU64,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let auth = Backend::start("auth-service", AUTH_LATENCY.0, AUTH_LATENCY.1)?;
    let gateway = Arc::new(Gateway {
        token: Mutex::new(Token {
            value: String::new(),
            expires: Instant::now(),
        }),
        auth: auth.addr,
        ttl_ms: AtomicU64::new(300_000),
    });
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let g = gateway.clone();
    rt.spawn(http::serve(listener, "http GET /orders", move |req| {
        handle(g.clone(), req)
    }));
    let spec = Spec {
        clients: 8,
        think: Duration::from_micros(500),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        // "token_ttl: 2": seconds meant, milliseconds read. Applying the configuration
        // drops the cached token.
        || {
            gateway.ttl_ms.store(2, Ordering::Relaxed);
            gateway
                .token
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .expires = Instant::now();
        },
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::get(format!(
                        "http://gateway/orders?user={}",
                        c as u64 * 1000 + n
                    ))
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request")
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "std_mutex", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(gateway: Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
    let user = http::query(&req, "user").unwrap_or("0").to_string();
    let token = match upstream_token(&gateway) {
        Ok(t) => t,
        Err(e) => return http::error(StatusCode::BAD_GATEWAY, &format!("auth: {e}")),
    };
    let body = fdr::with_region("render", || {
        format!(
            "{{\"user\":{user},\"orders\":[],\"auth\":\"{}\"}}",
            token.len()
        )
    });
    fdr::log!("http", "GET /orders user={user}");
    http::ok(body)
}

/// The cached upstream token, refreshed when it has expired.
fn upstream_token(gateway: &Gateway) -> std::io::Result<String> {
    let mut token = gateway.token.lock().unwrap_or_else(PoisonError::into_inner); // FAULT: std-mutex
    if token.expires <= Instant::now() {
        token.value = fetch_token(gateway.auth)?;
        let ttl = Duration::from_millis(gateway.ttl_ms.load(Ordering::Relaxed));
        token.expires = Instant::now() + ttl;
    }
    Ok(token.value.clone())
}

/// Asks the auth service for a token, with a blocking client.
fn fetch_token(auth: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(auth)?;
    stream.set_nodelay(true)?;
    stream.write_all(b"TOKEN gateway\n")?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?; // FAULT: std-mutex-held
    Ok(reply.trim_end().to_string())
}
