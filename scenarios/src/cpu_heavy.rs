//! A metrics dashboard API on tokio. `GET /stats` returns per-host aggregates of the
//! service's sample table (CSV text kept in memory); the aggregates are cached and the
//! cache is refreshed when the table changes.
//!
//! The fault: a frontend release adds a cache-busting `?t=<now>` to the request, which the
//! cache keys on, so every request re-parses and re-aggregates the whole table inside the
//! handler: several milliseconds of CPU per request on an async worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;

use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx, Rng};

/// How long one aggregation of the table takes on this host (the table's size is chosen to
/// match, as the real table's size would be what it is).
const AGGREGATE_COST: Duration = Duration::from_millis(5);

struct Dashboard {
    table: String,
    cache: Mutex<HashMap<String, Arc<String>>>,
    cache_busting: AtomicBool,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let rows = crate::svc::size_for(AGGREGATE_COST, 1000, |n| {
        let table = sample_table(n);
        move || {
            std::hint::black_box(aggregate(&table));
        }
    });
    let dashboard = Arc::new(Dashboard {
        table: sample_table(rows),
        cache: Mutex::new(HashMap::new()),
        cache_busting: AtomicBool::new(false),
    });
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let d = dashboard.clone();
    rt.spawn(http::serve(listener, "http GET /stats", move |req| {
        handle(d.clone(), req)
    }));
    let spec = Spec {
        clients: 8,
        think: Duration::from_millis(2),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || dashboard.cache_busting.store(true, Ordering::Relaxed),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::get(format!(
                        "http://dash/stats?window=5m&t={}",
                        c as u64 * 1_000_000 + n
                    ))
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request")
                }),
            )
        },
    )?;
    println!("cpu_heavy: the table has {rows} rows");
    crate::svc::finish(ctx, "cpu_heavy", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(dashboard: Arc<Dashboard>, req: Request<Incoming>) -> Response<Body> {
    let window = http::query(&req, "window").unwrap_or("5m");
    let key = if dashboard.cache_busting.load(Ordering::Relaxed) {
        req.uri().query().unwrap_or_default().to_string()
    } else {
        window.to_string()
    };
    let cached = dashboard
        .cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .cloned();
    let body = match cached {
        Some(body) => body,
        None => {
            let body = Arc::new(aggregate(&dashboard.table).to_json()); // FAULT: cpu-heavy
            let mut cache = dashboard
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= 64 {
                cache.clear();
            }
            cache.insert(key, body.clone());
            body
        }
    };
    fdr::log!("http", "GET /stats window={window}");
    http::ok(Bytes::from(body.as_bytes().to_vec()))
}

/// Per-host count, sum, min and max of the values.
#[derive(Default)]
struct Summary {
    hosts: HashMap<String, (u64, f64, f64, f64)>,
}

impl Summary {
    fn to_json(&self) -> String {
        let mut hosts: Vec<_> = self.hosts.iter().collect();
        hosts.sort_by(|a, b| a.0.cmp(b.0));
        let items: Vec<String> = hosts
            .iter()
            .map(|(h, (n, sum, min, max))| {
                format!(
                    "{{\"host\":\"{h}\",\"n\":{n},\"mean\":{:.3},\"min\":{min},\"max\":{max}}}",
                    sum / *n as f64
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }
}

/// Parses the table (`ts,host,metric,value` per line) and aggregates it per host.
// FAULT-BEGIN: cpu-heavy-loop
fn aggregate(table: &str) -> Summary {
    let mut s = Summary::default();
    for line in table.lines() {
        let mut fields = line.split(',');
        let (Some(_ts), Some(host), Some(_metric), Some(value)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let e =
            s.hosts
                .entry(host.to_string())
                .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        e.0 += 1;
        e.1 += v;
        e.2 = e.2.min(v);
        e.3 = e.3.max(v);
    }
    s
}
// FAULT-END: cpu-heavy-loop

/// A sample table of `rows` rows.
fn sample_table(rows: usize) -> String {
    let mut rng = Rng::new(rows as u64);
    let mut t = String::with_capacity(rows * 40);
    for i in 0..rows {
        let host = rng.between(0, 31);
        let value = rng.between(0, 1_000_000) as f64 / 1000.0;
        t.push_str(&format!(
            "{},web-{host:02},latency_ms,{value}\n",
            1_700_000_000 + i
        ));
    }
    t
}
