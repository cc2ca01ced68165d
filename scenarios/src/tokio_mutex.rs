//! A session service on tokio. Sessions live in a map behind a `tokio::sync::Mutex`; each
//! request updates its session and persists it to the session store (another service, about
//! 5 ms away).
//!
//! The fault: a change to make session writes "consistent" persists the session while still
//! holding the map's lock, across the store call's `.await`. No thread blocks and no poll is
//! long, yet requests queue on the async lock one store round trip at a time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::svc::backend::{self, Backend};
use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// The session store's response time.
const STORE_LATENCY: (Duration, Duration) = (Duration::from_millis(4), Duration::from_millis(6));

#[derive(Default)]
struct Session {
    hits: u64,
    cart: Vec<u64>,
}

struct Sessions {
    map: Mutex<HashMap<u64, Session>>,
    store: SocketAddr,
    write_under_lock: AtomicBool,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let store = Backend::start("session-store", STORE_LATENCY.0, STORE_LATENCY.1)?;
    let sessions = Arc::new(Sessions {
        map: Mutex::new(HashMap::new()),
        store: store.addr,
        write_under_lock: AtomicBool::new(false),
    });
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let s = sessions.clone();
    rt.spawn(http::serve(listener, "http POST /cart", move |req| {
        handle(s.clone(), req)
    }));
    let spec = Spec {
        clients: 16,
        think: Duration::from_millis(1),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || sessions.write_under_lock.store(true, Ordering::Relaxed),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::post(format!("http://sessions/cart?session={c}&item={n}"))
                        .body(Full::new(Bytes::new()))
                        .expect("a valid request")
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "tokio_mutex", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(sessions: Arc<Sessions>, req: Request<Incoming>) -> Response<Body> {
    let id: u64 = http::query(&req, "session")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let item: u64 = http::query(&req, "item")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut map = sessions.map.lock().await;
    let session = map.entry(id).or_default();
    session.hits += 1;
    session.cart.push(item);
    if session.cart.len() > 32 {
        session.cart.remove(0);
    }
    let record = format!(
        "PUT session/{id} hits={} items={}",
        session.hits,
        session.cart.len()
    );
    let saved = if sessions.write_under_lock.load(Ordering::Relaxed) {
        let saved = backend::call(sessions.store, &record).await; // FAULT: tokio-mutex
        drop(map);
        saved
    } else {
        drop(map);
        backend::call(sessions.store, &record).await
    };
    match saved {
        Ok(reply) if reply.starts_with("OK") => {
            fdr::log!("http", "POST /cart session={id}");
            http::ok(format!("{{\"session\":{id},\"item\":{item}}}"))
        }
        Ok(reply) => http::error(StatusCode::BAD_GATEWAY, &reply),
        Err(e) => http::error(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}
