//! A pricing API on tokio: each request quotes a price from the in-memory price list.
//!
//! The fault: a "live prices" feature is switched on. For each quote the handler now spawns
//! a watcher task that waits for the quoted item's next price change, to push it to the
//! client, and registers the change notifier in the price list. Price changes are published
//! by a feed that is not running in this region, so no notifier ever fires and none is ever
//! dropped: every request leaves a task behind, waiting forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

struct Prices {
    list: HashMap<u64, u64>,
    /// Notifiers of price changes per item. The feed would drain them; unbounded because
    /// nobody expected it not to run (the leak's memory).
    watchers: Mutex<HashMap<u64, Vec<oneshot::Sender<u64>>>>,
    live_prices: AtomicBool,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let prices = Arc::new(Prices {
        list: (0..1000).map(|i| (i, 100 + i * 3)).collect(),
        watchers: Mutex::new(HashMap::new()),
        live_prices: AtomicBool::new(false),
    });
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let p = prices.clone();
    rt.spawn(http::serve(listener, "http GET /quote", move |req| {
        handle(p.clone(), req)
    }));
    let spec = Spec {
        clients: 8,
        think: Duration::from_millis(1),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || prices.live_prices.store(true, Ordering::Relaxed),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::get(format!(
                        "http://pricing/quote?item={}",
                        (c as u64 * 37 + n) % 1000
                    ))
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request")
                }),
            )
        },
    )?;
    let waiting: usize = prices
        .watchers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .map(Vec::len)
        .sum();
    println!("task_leak: {waiting} watchers waiting at the end");
    crate::svc::finish(ctx, "task_leak", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(prices: Arc<Prices>, req: Request<Incoming>) -> Response<Body> {
    let item: u64 = http::query(&req, "item")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let Some(price) = prices.list.get(&item).copied() else {
        return http::ok("{}");
    };
    if prices.live_prices.load(Ordering::Relaxed) {
        let (tx, rx) = oneshot::channel();
        prices
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(item)
            .or_default()
            .push(tx);
        let watch = async move {
            if let Ok(new_price) = rx.await {
                fdr::log!("pricing", "item {item} now {new_price}");
            }
        };
        fdr::spawn("price watcher", watch); // FAULT: task-leak
    }
    fdr::log!("http", "GET /quote item={item}");
    http::ok(format!("{{\"item\":{item},\"price\":{price}}}"))
}
