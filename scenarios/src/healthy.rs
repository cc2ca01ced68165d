//! A healthy user-profile API on tokio, nothing injected: each request checks the caller's
//! token (a little CPU), reads the profile from a shared cache (an `fdr::sync::Mutex`),
//! fetches the user's preferences from the preferences service (async TCP, about half a
//! millisecond) and renders. fdr should find nothing above info.
//!
//! With a busy sibling (`healthy_busy_sibling`): the same service while another process on
//! the same host (a batch job: this binary's `burn`) keeps every core busy for the whole
//! run. The host steals CPU from the service; that is not the service's fault, and fdr
//! should still find nothing above info.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::svc::backend::{self, Backend};
use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

struct Profiles {
    cache: fdr::sync::Mutex<Vec<String>>,
    preferences: SocketAddr,
}

/// Runs the scenario; with `sibling`, a CPU-bound process shares the host meanwhile.
pub(crate) fn run(ctx: &Ctx, sibling: bool) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    // The batch job starts before the service and outlives the run (it stops by itself).
    let mut batch = if sibling {
        Some(busy_sibling(
            ctx.warmup + ctx.fault + Duration::from_secs(2),
        )?)
    } else {
        None
    };
    let preferences = Backend::start(
        "preferences-service",
        Duration::from_micros(300),
        Duration::from_micros(700),
    )?;
    let profiles = Arc::new(Profiles {
        cache: fdr::sync::Mutex::new((0..4096).map(|i| format!("user-{i:04}")).collect()),
        preferences: preferences.addr,
    });
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let p = profiles.clone();
    rt.spawn(http::serve(listener, "http GET /profile", move |req| {
        handle(p.clone(), req)
    }));
    let spec = Spec {
        clients: 8,
        think: Duration::from_millis(1),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || {},
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::get(format!(
                        "http://profiles/profile?id={}",
                        (c as u64 * 131 + n) % 4096
                    ))
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request")
                }),
            )
        },
    )?;
    let name = if sibling {
        "healthy_busy_sibling"
    } else {
        "healthy"
    };
    if let Some(b) = batch.as_mut() {
        let _ = b.kill();
        let _ = b.wait();
    }
    crate::svc::finish(ctx, name, &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Starts the batch job: this binary's `burn`, one busy thread per core.
fn busy_sibling(length: Duration) -> Result<Child, BoxError> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(Command::new(std::env::current_exe()?)
        .args([
            "burn",
            "--seconds",
            &format!("{:.1}", length.as_secs_f64()),
            "--threads",
            &cores.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?)
}

/// The batch job's work: checksums over a buffer, on `threads` threads, for `length`.
pub(crate) fn burn(length: Duration, threads: usize) {
    let end = Instant::now() + length;
    let workers: Vec<_> = (0..threads.clamp(1, 64))
        .map(|t| {
            std::thread::spawn(move || {
                let buf: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 + t) as u8).collect();
                let mut sum = 0u64;
                while Instant::now() < end {
                    for b in &buf {
                        sum = sum.rotate_left(5) ^ u64::from(*b);
                    }
                }
                std::hint::black_box(sum);
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

async fn handle(profiles: Arc<Profiles>, req: Request<Incoming>) -> Response<Body> {
    let id: usize = http::query(&req, "id")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let authorized = fdr::with_region("auth", || {
        let token = req
            .headers()
            .get("authorization")
            .map_or(0, |v| v.len() as u64);
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ token;
        for i in 0..256u64 {
            h = (h ^ i).wrapping_mul(0x0100_0000_01b3);
        }
        h != 0
    });
    if !authorized {
        return http::error(StatusCode::UNAUTHORIZED, "bad token");
    }
    let name = fdr::with_region("cache", || {
        let cache = profiles.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache[id % cache.len()].clone()
    });
    let prefs = match backend::call(profiles.preferences, &format!("PREFS {id}")).await {
        Ok(p) => p,
        Err(e) => return http::error(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let body = fdr::with_region("render", || {
        format!("{{\"id\":{id},\"name\":\"{name}\",\"prefs\":\"{prefs}\"}}")
    });
    fdr::log!("http", "GET /profile id={id}");
    http::ok(body)
}
