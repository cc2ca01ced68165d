//! The fdr demo, run by `cargo xtask demo`.
//!
//! A small hyper service instrumented only through the `fdr` facade, the way a user would:
//! a traced task per request, regions per phase, a log per request, a shared cache behind an
//! `fdr::sync::Mutex`, tokio workers instrumented, a Prometheus latency histogram. A built-in
//! load generator drives it on loopback. Half-way, a fault is injected: a cache refresh that
//! makes a slow synchronous call while holding the cache lock. The flight recorder is on all
//! along; the sentinel watches the lock-wait and latency SLOs and dumps the incident when one
//! is breached; the admin endpoint serves the incident list; the analyzer diagnoses the
//! sentinel's dump and writes an HTML report.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::fs;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fdr::FdrFutureExt;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Concurrent client connections of the load generator.
const CLIENTS: usize = 8;
/// Pause of each client between two requests.
const CLIENT_THINK: Duration = Duration::from_micros(500);
/// During the fault, one request in this many refreshes the cache under the lock.
const FAULT_EVERY: u64 = 3;
/// How long the faulty refresh's synchronous call takes.
const FAULT_CALL: Duration = Duration::from_micros(600);
/// Latency samples kept per phase (a bound, not a target).
const MAX_SAMPLES: usize = 1 << 20;

/// The sentinel's rules: the SLOs the demo service keeps in the healthy phase and breaks in
/// the fault (`fdr_lock_wait_ns` is fdr's runtime metric of contended lock waits). Each
/// dumps `delay` after it fires, so the incident's window holds the fault more than what
/// came before it.
fn rules(delay: Duration) -> [String; 2] {
    let d = delay.as_millis();
    [
        format!("lock_waits: fdr_lock_wait_ns p99 > 1ms for 2 delay {d}ms"),
        format!("slow_requests: http_request_duration_seconds p99 > 25ms for 2 delay {d}ms"),
    ]
}

/// The service's shared state.
struct App {
    /// Request latency, as a Prometheus histogram the sentinel reads.
    latency: prometheus::Histogram,
    /// User profiles, the hot shared data every request reads.
    cache: fdr::sync::Mutex<Vec<String>>,
    /// Whether the fault is injected.
    fault: AtomicBool,
    /// Requests served, to pick which ones refresh.
    served: AtomicU64,
}

struct Args {
    out: PathBuf,
    fdr: String,
    phase: Duration,
}

impl Args {
    fn parse() -> Result<Args, BoxError> {
        let mut args = Args {
            out: PathBuf::from("target/fdr-demo"),
            fdr: "fdr".into(),
            phase: Duration::from_secs(4),
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--out" => args.out = value()?.into(),
                "--fdr" => args.fdr = value()?,
                "--seconds" => {
                    let s: f64 = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
                    if !(0.5..=60.0).contains(&s) {
                        return Err("--seconds must be between 0.5 and 60".into());
                    }
                    args.phase = Duration::from_secs_f64(s);
                }
                _ => {
                    return Err(format!(
                        "unknown argument {a} (use --out DIR, --fdr PATH, --seconds N)"
                    )
                    .into());
                }
            }
        }
        Ok(args)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("fdr demo failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), BoxError> {
    let args = Args::parse()?;
    fs::create_dir_all(&args.out)?;

    // fdr, as a service sets it up: the flight recorder always on, a panic dumps it.
    fdr::start(fdr::Config {
        flight: Some(fdr::FlightConfig {
            min_age: args.phase,
            max_bytes: 64 << 20,
        }),
        service_version: env!("CARGO_PKG_VERSION").into(),
        ..fdr::Config::default()
    })?;
    fdr::dump_on_panic(&args.out);

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(2)
        .enable_all()
        .thread_name("demo-worker");
    fdr::tokio::instrument(&mut builder);
    let runtime = builder.build()?;

    let registry = prometheus::Registry::new();
    let latency = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("http_request_duration_seconds", "request latency")
            .buckets(prometheus::exponential_buckets(100e-6, 2.0, 12)?),
    )?;
    registry.register(Box::new(latency.clone()))?;
    // The sentinel: every 250 ms, the rules above; an incident is the flight recorder
    // three quarters of a phase after the trigger (the window is a phase long), in
    // `out/incidents`.
    let rules = rules(args.phase.mul_f64(0.75));
    let incidents = args.out.join("incidents");
    let _ = fs::remove_dir_all(&incidents);
    let mut sentinel = fdr::sentinel::Sentinel::builder()
        .interval(Duration::from_millis(250))
        .registry(registry.clone())
        .dir(&incidents, fdr::sentinel::Retention::default())
        .service_version(env!("CARGO_PKG_VERSION"))
        .log_with(|line| println!("  sentinel: {line}"));
    for rule in &rules {
        sentinel = sentinel.rule(fdr::sentinel::Rule::parse(rule)?);
    }
    let sentinel = sentinel.start()?;
    // The admin endpoint, on its own loopback listener.
    let admin = fdr::admin::Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .sentinel(&sentinel)
        .registry(registry)
        .start()?;

    let app = Arc::new(App {
        latency,
        cache: fdr::sync::Mutex::new((0..1024).map(|i| format!("user-{i}")).collect()),
        fault: AtomicBool::new(false),
        served: AtomicU64::new(0),
    });
    let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    runtime.spawn(serve(listener, app.clone()));
    println!(
        "fdr demo: a hyper service on {addr} (2 tokio workers), the flight recorder on \
         (window {:.0?}, 64 MiB), {CLIENTS} clients on loopback",
        args.phase
    );
    println!("  sentinel rules: {}", rules.join("; "));
    println!(
        "  admin endpoint: http://{}/debug/fdr/\n",
        admin.local_addr()
    );

    let before = args.out.join("before.fdr");

    let healthy = load(addr, args.phase)?;
    println!("phase 1, healthy      {healthy}");
    let bytes = dump(&before)?;
    println!(
        "  flight recorder dumped: {} ({})",
        before.display(),
        size(bytes)
    );

    let healthy_triggers = sentinel.stats().triggers;
    app.fault.store(true, Ordering::Relaxed);
    let faulty = load(addr, args.phase)?;
    println!(
        "phase 2, fault        {faulty}\n  (injected: one request in {FAULT_EVERY} refreshes the \
         cache with a {FAULT_CALL:?} synchronous call while holding the cache lock)"
    );
    // The sentinel's dump is written its delay after the trigger.
    let deadline = Instant::now() + args.phase + Duration::from_secs(5);
    while sentinel.stats().dumps_written == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    app.fault.store(false, Ordering::Relaxed);
    let stats = sentinel.stats();
    if healthy_triggers > 0 {
        return Err("the sentinel fired during the healthy phase: the demo's SLOs are too tight for this machine".into());
    }
    let Some(id) = stats.last_incident else {
        return Err(format!("the sentinel wrote no incident during the fault: {stats:?}").into());
    };
    let incident = incidents.join(format!("{id}.fdr"));
    let listed = runtime.block_on(admin_get(admin.local_addr(), "/debug/fdr/incidents"))?;
    println!(
        "  admin: GET /debug/fdr/incidents -> {} incident(s), newest {id}",
        listed.matches("\"id\"").count()
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
    let stats = fdr::stats();
    println!(
        "  recorder: {} events in {}, {} older events aged out of the window, {} lost\n",
        stats.events,
        size(stats.bytes),
        stats.aged_out_events(),
        stats.lost_events()
    );

    diagnose(&incident, &args)?;
    sentinel.stop();
    admin.shutdown();
    Ok(())
}

/// A `GET` to the admin endpoint; the body as text.
async fn admin_get(addr: SocketAddr, path: &str) -> Result<String, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get(format!("http://{addr}{path}")).body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        return Err(format!("GET {path}: {}", resp.status()).into());
    }
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Accepts connections; every request is a traced task.
async fn serve(listener: TcpListener, app: Arc<App>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| {
            handle(app.clone(), req).traced("http GET /user")
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        fdr::spawn("http connection", async move {
            let _ = connection.await;
        });
    }
}

/// The request handler: auth, a cache lookup, a downstream call, rendering.
async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let id: usize = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("id="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    fdr::with_region("auth", || spin(Duration::from_micros(20)));
    let user = fdr::with_region("db", || lookup(&app, id));
    // The downstream call is asynchronous: the task yields while it waits.
    tokio::time::sleep(Duration::from_micros(300)).await;
    let body = fdr::with_region("render", || {
        spin(Duration::from_micros(20));
        format!("{{\"user\":\"{user}\"}}")
    });
    fdr::log!("http", "GET /user?id={id} -> {} bytes", body.len());
    app.latency.observe(started.elapsed().as_secs_f64());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Reads a user from the shared cache.
fn lookup(app: &App, id: usize) -> String {
    let mut cache = app.cache.lock().unwrap_or_else(|p| p.into_inner());
    let n = app.served.fetch_add(1, Ordering::Relaxed);
    if app.fault.load(Ordering::Relaxed) && n.is_multiple_of(FAULT_EVERY) {
        refresh(&mut cache);
    }
    cache[id % cache.len()].clone()
}

/// The fault: a refresh that makes a slow synchronous call (a file read, a DNS lookup, a
/// blocking client) while the caller holds the cache lock, on an async worker thread.
fn refresh(cache: &mut [String]) {
    std::thread::sleep(FAULT_CALL);
    if let Some(first) = cache.first_mut() {
        first.make_ascii_lowercase();
    }
}

/// Busy work standing in for CPU-bound request processing.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Latencies seen by the load generator in one phase.
struct PhaseReport {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl std::fmt::Display for PhaseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>6} requests in {:.1?} ({:.0}/s), latency p50 {:.2?}, p99 {:.2?}, max {:.2?}, {} errors",
            self.requests,
            self.elapsed,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            self.p50,
            self.p99,
            self.max,
            self.errors
        )
    }
}

/// Drives the service for `duration` from its own thread and runtime (not instrumented:
/// it stands for the service's clients).
fn load(addr: SocketAddr, duration: Duration) -> Result<PhaseReport, BoxError> {
    std::thread::Builder::new()
        .name("load-generator".into())
        .spawn(move || -> Result<PhaseReport, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let start = Instant::now();
                let deadline = start + duration;
                let mut clients = Vec::new();
                for c in 0..CLIENTS {
                    clients.push(tokio::spawn(client(addr, deadline, c)));
                }
                let (mut lat, mut errors) = (Vec::new(), 0);
                for c in clients {
                    let (l, e) = c.await.map_err(|e| e.to_string())?;
                    lat.extend(l);
                    errors += e;
                }
                lat.sort_unstable();
                let pct = |p: f64| {
                    lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or_default()
                };
                Ok(PhaseReport {
                    requests: lat.len(),
                    errors,
                    elapsed: start.elapsed(),
                    p50: pct(0.50),
                    p99: pct(0.99),
                    max: lat.last().copied().unwrap_or_default(),
                })
            })
        })?
        .join()
        .map_err(|_| "the load generator panicked")?
        .map_err(Into::into)
}

/// One client: a keep-alive connection, requests until the deadline.
async fn client(addr: SocketAddr, deadline: Instant, seed: usize) -> (Vec<Duration>, usize) {
    let (mut lat, mut errors) = (Vec::new(), 0);
    let Ok(stream) = TcpStream::connect(addr).await else {
        return (lat, 1);
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return (lat, 1);
    };
    tokio::spawn(conn);
    let mut id = seed * 7919;
    while Instant::now() < deadline {
        id = (id * 31 + 17) % 1024;
        let req = Request::get(format!("http://{addr}/user?id={id}"))
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let t = Instant::now();
        match sender.send_request(req).await {
            Ok(resp) => {
                let _ = resp.into_body().collect().await;
                if lat.len() < MAX_SAMPLES / CLIENTS {
                    lat.push(t.elapsed());
                }
            }
            Err(_) => errors += 1,
        }
        tokio::time::sleep(CLIENT_THINK).await;
    }
    (lat, errors)
}

/// Writes the flight recorder to `path` through a temporary file and a rename.
fn dump(path: &Path) -> Result<u64, BoxError> {
    let tmp = path.with_extension("fdr.tmp");
    let mut out = BufWriter::new(fs::File::create(&tmp)?);
    let bytes = fdr::flight().write_to(&mut out)?;
    out.flush()?;
    drop(out);
    fs::rename(&tmp, path)?;
    Ok(bytes)
}

fn size(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Diagnoses the incident dump, writes the HTML report, and says where to look next.
fn diagnose(incident: &Path, args: &Args) -> Result<(), BoxError> {
    let sidecar = fdr_analyzer::report::Incident::sidecar_path(incident);
    let trigger = fs::read(&sidecar)
        .ok()
        .and_then(|b| fdr_analyzer::report::Incident::from_json(&b).ok());
    let (report, outcome) = fdr_analyzer::report::Report::from_file(incident, trigger)?;
    let diagnosis = &report.diagnosis;
    if let Some(e) = outcome.error {
        return Err(format!("the incident dump is damaged: {e}").into());
    }
    println!("diagnosis of {} (top findings):", incident.display());
    let mut shown = 0;
    for f in diagnosis.findings().filter(|f| f.score > 0.0).take(3) {
        shown += 1;
        println!(
            "{shown}. [{} {:.0}] {}: {}",
            f.severity.as_str(),
            f.score,
            f.rule,
            f.title
        );
        for e in f.evidence.iter().take(3) {
            println!("     - {e}");
        }
        println!("     fix: {}", f.fix);
    }
    if shown == 0 {
        println!("   nothing above info: the trace looks healthy");
    }
    let report_path = args.out.join("report.html");
    let title = incident.display().to_string();
    fs::write(&report_path, report.render(&title))?;
    let before = args.out.join("before.fdr");
    let fdr = &args.fdr;
    println!(
        "\nreport:  {} (open it in a browser)",
        report_path.display()
    );
    println!("explore: {fdr} blocking {}", incident.display());
    println!("         {fdr} sched {}", incident.display());
    println!(
        "         {fdr} diff {} {}",
        before.display(),
        incident.display()
    );
    println!(
        "         {fdr} export --format chrome-json -o trace.json {}  (Perfetto UI)",
        incident.display()
    );
    Ok(())
}
