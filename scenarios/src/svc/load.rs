//! The load generator: closed-loop clients on loopback that measure each request's latency,
//! as a user's load test does. It runs on its own thread and runtime, without fdr: it stands
//! for the service's clients.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::BoxError;

/// Latency samples kept per client (a bound, not a target).
const MAX_SAMPLES_PER_CLIENT: usize = 1 << 17;
/// A request that takes longer than this counts as an error (and the client reconnects).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed request or connection.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// How the clients behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    /// Concurrent connections.
    pub(crate) clients: usize,
    /// Each client's pause between two requests.
    pub(crate) think: Duration,
}

/// What the clients saw in one phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct PhaseStats {
    /// Requests completed.
    pub(crate) requests: usize,
    /// Requests failed or timed out.
    pub(crate) errors: usize,
    /// The phase's length.
    pub(crate) seconds: f64,
    /// Latency percentiles.
    pub(crate) p50: Duration,
    /// 99th percentile.
    pub(crate) p99: Duration,
    /// Slowest.
    pub(crate) max: Duration,
}

impl PhaseStats {
    fn from(mut lat: Vec<Duration>, errors: usize, seconds: f64) -> Self {
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        PhaseStats {
            requests: lat.len(),
            errors,
            seconds,
            p50: pct(0.50),
            p99: pct(0.99),
            max: lat.last().copied().unwrap_or_default(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "per_sec": (self.requests as f64 / self.seconds.max(1e-9)).round(),
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

impl fmt::Display for PhaseStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({:.0}/s), p50 {:.2?}, p99 {:.2?}, max {:.2?}, {} errors",
            self.requests,
            self.requests as f64 / self.seconds.max(1e-9),
            self.p50,
            self.p99,
            self.max,
            self.errors
        )
    }
}

/// What the clients saw before and during the fault.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadReport {
    /// Before the fault.
    pub(crate) before: PhaseStats,
    /// During it.
    pub(crate) during: PhaseStats,
}

impl LoadReport {
    /// As JSON.
    pub(crate) fn to_json(&self) -> Value {
        json!({ "before": self.before.to_json(), "during": self.during.to_json() })
    }
}

/// One client's samples: (when the request was sent, its latency), and failures by phase.
#[derive(Default)]
struct Samples {
    lat: Vec<(Instant, Duration)>,
    errors: Vec<Instant>,
}

impl Samples {
    fn ok(&mut self, sent: Instant) {
        if self.lat.len() < MAX_SAMPLES_PER_CLIENT {
            self.lat.push((sent, sent.elapsed()));
        }
    }
}

/// Runs `spec.clients` clients until `end`, each made by `client`, on a current-thread
/// runtime; splits their samples at `fault_at`.
fn drive<C, F>(
    spec: Spec,
    fault_at: Instant,
    end: Instant,
    client: C,
) -> Result<LoadReport, BoxError>
where
    C: Fn(usize) -> F,
    F: Future<Output = Samples> + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let all = rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let handles: Vec<_> = (0..spec.clients)
                    .map(|c| tokio::task::spawn_local(client(c)))
                    .collect();
                let mut all = Vec::new();
                for h in handles {
                    all.push(h.await?);
                }
                Ok::<_, BoxError>(all)
            })
            .await
    })?;
    let (mut before, mut during) = (Vec::new(), Vec::new());
    let (mut err_before, mut err_during) = (0, 0);
    for s in all {
        for (sent, d) in s.lat {
            if sent < fault_at {
                &mut before
            } else {
                &mut during
            }
            .push(d);
        }
        for t in s.errors {
            if t < fault_at {
                err_before += 1;
            } else {
                err_during += 1;
            }
        }
    }
    let finished = Instant::now();
    Ok(LoadReport {
        before: PhaseStats::from(
            before,
            err_before,
            fault_at.saturating_duration_since(started).as_secs_f64(),
        ),
        during: PhaseStats::from(
            during,
            err_during,
            finished
                .min(end)
                .saturating_duration_since(fault_at)
                .as_secs_f64(),
        ),
    })
}

/// HTTP/1.1 clients on keep-alive connections; `request(client, n)` makes each client's
/// `n`th request.
pub(crate) fn http(
    addr: SocketAddr,
    spec: Spec,
    fault_at: Instant,
    end: Instant,
    request: Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>,
) -> Result<LoadReport, BoxError> {
    drive(spec, fault_at, end, |c| {
        let request = request.clone();
        async move {
            let mut s = Samples::default();
            let mut n = 0u64;
            'connection: while Instant::now() < end {
                let Some(mut sender) = http_connect(addr).await else {
                    s.errors.push(Instant::now());
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                };
                while Instant::now() < end {
                    let req = request(c, n);
                    n += 1;
                    let sent = Instant::now();
                    let done = tokio::time::timeout(REQUEST_TIMEOUT, async {
                        let resp = sender.send_request(req).await.ok()?;
                        let ok = resp.status().is_success();
                        resp.into_body().collect().await.ok()?;
                        Some(ok)
                    })
                    .await;
                    match done {
                        Ok(Some(true)) => s.ok(sent),
                        Ok(Some(false)) => s.errors.push(sent),
                        _ => {
                            s.errors.push(sent);
                            tokio::time::sleep(RETRY_PAUSE).await;
                            continue 'connection;
                        }
                    }
                    tokio::time::sleep(spec.think).await;
                }
            }
            s
        }
    })
}

async fn http_connect(
    addr: SocketAddr,
) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::task::spawn_local(conn);
    Some(sender)
}

/// Clients of a line protocol (a request of one or more lines, one response line), on
/// persistent connections; `line(client, n)` makes each client's `n`th request. A response
/// that starts with `ERR` counts as an error.
pub(crate) fn lines(
    addr: SocketAddr,
    spec: Spec,
    fault_at: Instant,
    end: Instant,
    line: Arc<dyn Fn(usize, u64) -> String + Send + Sync>,
) -> Result<LoadReport, BoxError> {
    drive(spec, fault_at, end, |c| {
        let line = line.clone();
        async move {
            let mut s = Samples::default();
            let mut n = 0u64;
            'connection: while Instant::now() < end {
                let Ok(stream) = TcpStream::connect(addr).await else {
                    s.errors.push(Instant::now());
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (rd, mut wr) = stream.into_split();
                let mut rd = BufReader::new(rd);
                let mut reply = String::new();
                while Instant::now() < end {
                    let mut req = line(c, n);
                    n += 1;
                    req.push('\n');
                    let sent = Instant::now();
                    reply.clear();
                    let done = tokio::time::timeout(REQUEST_TIMEOUT, async {
                        wr.write_all(req.as_bytes()).await?;
                        rd.read_line(&mut reply).await
                    })
                    .await;
                    match done {
                        Ok(Ok(n)) if n > 0 && !reply.starts_with("ERR") => s.ok(sent),
                        Ok(Ok(n)) if n > 0 => s.errors.push(sent),
                        _ => {
                            s.errors.push(sent);
                            tokio::time::sleep(RETRY_PAUSE).await;
                            continue 'connection;
                        }
                    }
                    tokio::time::sleep(spec.think).await;
                }
            }
            s
        }
    })
}
