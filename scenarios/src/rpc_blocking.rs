//! A key-value RPC server on tokio speaking a line protocol (`GET key` → `VALUE ...`), with
//! a per-tenant quota enforced by a rate limiter taken from a synchronous codebase: when the
//! tenant's bucket is empty, `acquire` sleeps the thread until the next token.
//!
//! The fault: the tenant's quota is lowered below its traffic, so `acquire` sleeps on almost
//! every request, on an async worker.
//!
//! Two shapes of the same server, the two ways such servers are written:
//! - `rpc_spawned`: the connection task reads requests and spawns a task per request
//!   (pipelining; responses go back through a channel to the connection's writer);
//! - `rpc_inline`: the connection task handles each request itself, in order.
//!
//! Either way the blocking line is the limiter's sleep, not where a task was spawned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// How the server handles a connection's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A task per request.
    Spawned,
    /// In the connection task.
    Inline,
}

/// Responses waiting for a connection's writer (a bound, as every queue has).
const PIPELINE_DEPTH: usize = 64;
/// The tenant's quota before and during the fault (requests per second).
const QUOTA_HEALTHY: f64 = 1_000_000.0;
const QUOTA_LOWERED: f64 = 100.0;

/// A token bucket, the way a synchronous client library writes one.
struct RateLimiter {
    state: Mutex<Bucket>,
}

struct Bucket {
    per_sec: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    fn new(per_sec: f64) -> Self {
        RateLimiter {
            state: Mutex::new(Bucket {
                per_sec,
                tokens: per_sec / 10.0,
                refilled: Instant::now(),
            }),
        }
    }

    fn set_rate(&self, per_sec: f64) {
        let mut b = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        b.per_sec = per_sec;
        b.tokens = b.tokens.min(per_sec / 100.0);
    }

    /// Takes a token, waiting for one if the bucket is empty.
    fn acquire(&self) {
        // Bounded: each wait is for the next token, which then exists unless another
        // thread took it first; a hundred rounds is far past any real contention.
        for _ in 0..100 {
            let wait = {
                let mut b = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let refill = now.duration_since(b.refilled).as_secs_f64() * b.per_sec;
                b.tokens = (b.tokens + refill).min(b.per_sec / 10.0);
                b.refilled = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / b.per_sec)
            };
            std::thread::sleep(wait); // FAULT: rate-limiter-sleep
        }
    }
}

struct Store {
    limiter: RateLimiter,
    data: HashMap<u64, String>,
}

/// Runs the scenario in the given shape.
pub(crate) fn run(ctx: &Ctx, shape: Shape) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let store = Arc::new(Store {
        limiter: RateLimiter::new(QUOTA_HEALTHY),
        data: (0..10_000).map(|k| (k, format!("value-{k:05}"))).collect(),
    });
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    rt.spawn(accept(listener, store.clone(), shape));
    let spec = Spec {
        clients: 8,
        think: Duration::from_micros(500),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || store.limiter.set_rate(QUOTA_LOWERED),
        move |fault_at, end| {
            load::lines(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| format!("GET {}", (c as u64 * 7919 + n * 31) % 10_000)),
            )
        },
    )?;
    let name = match shape {
        Shape::Spawned => "rpc_spawned",
        Shape::Inline => "rpc_inline",
    };
    crate::svc::finish(ctx, name, &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn accept(listener: TcpListener, store: Arc<Store>, shape: Shape) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let store = store.clone();
        match shape {
            Shape::Spawned => fdr::spawn("rpc connection", pipelined(stream, store)),
            Shape::Inline => fdr::spawn("rpc connection", in_order(stream, store)),
        };
    }
}

/// One request: quota, then the lookup.
fn handle(store: &Store, line: &str) -> String {
    store.limiter.acquire();
    let reply = match line.split_once(' ') {
        Some(("GET", key)) => match key
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|k| store.data.get(&k))
        {
            Some(v) => format!("VALUE {v}"),
            None => "NOT_FOUND".to_string(),
        },
        _ => "ERR unknown command".to_string(),
    };
    fdr::log!("rpc", "{line} -> {} bytes", reply.len());
    reply
}

/// Reads requests and spawns a task for each; a writer task sends the responses.
async fn pipelined(stream: TcpStream, store: Arc<Store>) {
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<String>(PIPELINE_DEPTH);
    fdr::spawn("rpc writer", async move {
        while let Some(mut reply) = rx.recv().await {
            reply.push('\n');
            if wr.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        match rd.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let request = line.trim_end().to_string();
        let (store, tx) = (store.clone(), tx.clone());
        fdr::spawn("rpc request", async move {
            let _ = tx.send(handle(&store, &request)).await;
        });
    }
}

/// Reads, handles and answers each request in turn.
async fn in_order(stream: TcpStream, store: Arc<Store>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        match rd.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut reply = handle(&store, line.trim_end());
        reply.push('\n');
        if wr.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
