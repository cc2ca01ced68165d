//! E1: the CPU time per request of a hyper service with a task per request, three regions
//! and a log per request, the flight recorder and the sentinel on, against the same service
//! without fdr.
//!
//! The services are this binary run again as child processes (`FDR_E2E_SERVER=on|off`),
//! each serving on a loopback port from one thread; the driver sends them the same requests
//! in rounds, rotating which goes first, and reads each child's CPU time (every thread's
//! time on CPU, `/proc/PID/task/*/schedstat`) before and after its batch. Figures:
//! `e2e.cpu_per_request_ns_off`, `e2e.cpu_per_request_ns_on` (medians over rounds) and
//! `e2e.cpu_per_request_ratio` (the median of the rounds' on/off ratios; target <= 1.01).
//! Linux only (elsewhere the bench reports nothing).
//!
//! What fdr adds per request, by component, by ablation in the same rounds: besides `off` and
//! `on`, services each run `on` less one component, and `e2e.component.NAME_ns` is the median
//! over rounds of (`on` less that service) in CPU ns per request: `events` (the flight
//! recorder off: no event recorded, the wrappers and metrics kept), `task_wrapper` (no
//! `traced` task per request: its events, its allocation and its waker shim),
//! `name_lookups` (the regions named through `region!`'s per-site id instead of
//! `with_region`'s per-thread cache lookup), `sampler` (the OS view off), `sentinel` (no
//! sentinel), `metrics` (no `fdr-metrics` thread). `e2e.component.collector_ns` is the
//! collector thread's own CPU time per request in the `on` service (`fdr-collector`), and
//! `e2e.component.fdr_threads_ns` that of every fdr thread (`fdr-*`). Components overlap
//! (the wrapper's events are events), so they need not add up to `on` less `off`.
//!
//! The traced service runs with the OS view on (`OsConfig::platform_default()`), so E1's
//! ratio includes the sampler; the `sampler` ablation service, traced the same way without
//! the OS view (`FDR_E2E_SERVER=sampler`), takes its turn in every round, and `os.cpu_per_request_ratio` is
//! the median of the rounds' view-on over view-off ratios: the OS view's own cost per
//! request. `os.sampler_cpu_share` is the sampler thread's (`fdr-sampler`, found by name in
//! `/proc/PID/task`) CPU time over the rounds' wall time: its share of one core
//! (E2: <= 0.002). `os.stack_capture_ns` is the median time of one stack capture of a
//! recorded thread blocked in the kernel inside a scope, in this process, each of a new
//! block, the way the sampler takes a long scope's first stack (E2: <= 20 us);
//! `os.stack_capture_cpu_ns` the capturing thread's CPU time in it, and the least round
//! medians beside them, with the capture before copies were cut and counters shared
//! (`os.stack_capture_whole_stack_*`) and `stack_of`'s (`os.stack_capture_on_demand_*`)
//! measured in the same rounds and the host's load average (see [`blocked_captures`]);
//! `os.stack_capture_again_ns` the same thread captured again at once, still blocked where
//! the first found it (the later stacks of one long scope); `os.stack_capture_running_ns` the
//! same for a thread
//! spinning on a CPU (the capture signal: it includes the wait for that thread to run).
//! `os.cpu_samples_kept_share` is the share of the CPU-timer stacks a spinning thread's CPU
//! time asks for (at 99 Hz) that reach the trace.
//!
//! The traced service's flight recorder is kept as the run's artifact: when the driver is
//! done, the service dumps it to `$FDR_E2E_TRACE` (`cargo xtask bench` sets it to
//! `target/xtask/bench/e2e.fdr`), a trace of the bench's critical path to read with `fdr`
//! and to compare across runs (`fdr diff`).

#![allow(missing_docs, reason = "a bench binary")]

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fdr_benches::{median, report};
use fdr_recorder::task::FdrFutureExt;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 61;
const REQUESTS_PER_ROUND: usize = 2_000;
const CONNECTIONS: usize = 4;
const FIGURE: &str = "e2e.cpu_per_request_ratio";

/// The traced services: `on` less one component (see the crate docs), by the name of the
/// figure its difference to `on` is reported under.
const ABLATIONS: [&str; 6] = [
    "events",
    "task_wrapper",
    "name_lookups",
    "sampler",
    "sentinel",
    "metrics",
];

/// What a service runs: `off`, `on`, or `on` less one component of [`ABLATIONS`].
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// The recorder is started (flight recorder, collector).
    recorder: bool,
    /// The flight recorder records (`false`: started without a window, so nothing is).
    flight: bool,
    /// Requests are `traced` tasks and phases regions.
    instrumented: bool,
    /// Each request is a `traced` task.
    wrapper: bool,
    /// Regions through `region!` (an id per call site) instead of `with_region`.
    static_names: bool,
    os: bool,
    sentinel: bool,
    metrics: bool,
}

impl Mode {
    const ON: Mode = Mode {
        recorder: true,
        flight: true,
        instrumented: true,
        wrapper: true,
        static_names: false,
        os: true,
        sentinel: true,
        metrics: true,
    };
    const OFF: Mode = Mode {
        recorder: false,
        flight: false,
        instrumented: false,
        wrapper: false,
        static_names: false,
        os: false,
        sentinel: false,
        metrics: false,
    };

    fn parse(name: &str) -> Option<Mode> {
        let on = Mode::ON;
        Some(match name {
            "on" => on,
            "off" => Mode::OFF,
            "events" => Mode {
                flight: false,
                ..on
            },
            "task_wrapper" => Mode {
                wrapper: false,
                ..on
            },
            "name_lookups" => Mode {
                static_names: true,
                ..on
            },
            "sampler" => Mode { os: false, ..on },
            "sentinel" => Mode {
                sentinel: false,
                ..on
            },
            "metrics" => Mode {
                metrics: false,
                ..on
            },
            _ => return None,
        })
    }
}

fn main() {
    if let Ok(mode) = std::env::var("FDR_E2E_SERVER") {
        let m = Mode::parse(&mode).unwrap_or_else(|| panic!("e2e: no service mode {mode:?}"));
        serve(mode == "on", m);
        return;
    }
    // `cargo bench -- FILTER`: run only if the filter names this bench's figures.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref().is_none_or(|f| {
        FIGURE.contains(f)
            || f.starts_with("e2e")
            || "os.sampler_cpu_share".contains(f)
            || "os.cpu_per_request_ratio".contains(f)
    }) {
        drive();
    }
    if filter.is_none_or(|f| f.starts_with("os.stack_capture") || f.starts_with("os.cpu")) {
        stack_capture();
    }
}

/// The request handler: parse, three phases, a log line; instrumented, each phase a region.
async fn handle(req: Request<Incoming>, mode: Mode) -> Result<Response<Full<Bytes>>, Infallible> {
    let fdr = mode.instrumented;
    let phase = |name: &'static str, f: &mut dyn FnMut()| {
        if !fdr {
            f()
        } else if mode.static_names {
            // The three names, each a `region!` site of its own.
            let _r = match name {
                "parse" => fdr_recorder::region!("parse"),
                "lookup" => fdr_recorder::region!("lookup"),
                _ => fdr_recorder::region!("render"),
            };
            f()
        } else {
            fdr_recorder::with_region(name, f)
        }
    };
    let mut id = 0u64;
    phase("parse", &mut || {
        id = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("id="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    });
    let mut user = String::new();
    phase("lookup", &mut || {
        user = format!("user-{}", id.wrapping_mul(2_654_435_761) % 100_000);
    });
    tokio::task::yield_now().await;
    let mut body = String::new();
    phase("render", &mut || {
        body = format!("{{\"id\":{id},\"user\":\"{user}\"}}");
    });
    if fdr {
        fdr_recorder::log!("http", "GET /user?id={id} -> {} bytes", body.len());
    }
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// A service process: prints its port, serves until its standard input closes. `dump`: the
/// service whose flight recorder is the run's artifact.
fn serve(dump: bool, mode: Mode) {
    let dir = std::env::temp_dir().join(format!("fdr-e2e-incidents-{}", std::process::id()));
    if mode.recorder {
        fdr_recorder::start(fdr_recorder::Config {
            flight: mode.flight.then(fdr_recorder::FlightConfig::default),
            os: if mode.os {
                fdr_recorder::OsConfig::platform_default()
            } else {
                None
            },
            metrics_interval: mode
                .metrics
                .then_some(fdr_recorder::DEFAULT_METRICS_INTERVAL),
            ..fdr_recorder::Config::default()
        })
        .expect("recorder starts");
    }
    let _sentinel = mode.sentinel.then(|| {
        fdr_sentinel::Sentinel::builder()
            .interval(Duration::from_secs(1))
            .rule(
                fdr_sentinel::Rule::parse("slow: fdr_sched_latency_ns p99 > 10s for 3")
                    .expect("rule"),
            )
            .dir(&dir, fdr_sentinel::Retention::default())
            .start()
            .expect("sentinel starts")
    });
    std::thread::spawn(move || {
        // The driver closes our standard input when it is done.
        let _ = std::io::stdin().read_line(&mut String::new());
        if let (true, Some(path)) = (dump, std::env::var_os("FDR_E2E_TRACE")) {
            let written = std::fs::File::create(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    let mut out = std::io::BufWriter::new(f);
                    fdr_recorder::flight()
                        .write_to(&mut out)
                        .map_err(|e| e.to_string())?;
                    out.flush().map_err(|e| e.to_string())
                });
            if let Err(e) = written {
                eprintln!(
                    "e2e: could not write the trace to {}: {e}",
                    path.to_string_lossy()
                );
            }
        }
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        println!("{}", listener.local_addr().expect("address").port());
        std::io::stdout().flush().expect("stdout");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = hyper::service::service_fn(move |req| {
                let h = handle(req, mode);
                async move {
                    if mode.wrapper {
                        h.traced("http GET /user").await
                    } else {
                        h.await
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
}

/// A running service and its port.
struct Service {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl Service {
    fn start(mode: &str) -> Service {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env("FDR_E2E_SERVER", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("service starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port = line.trim().parse().expect("a port");
        Service {
            stdin: child.stdin.take(),
            child,
            port,
        }
    }

    /// Nanoseconds the thread named `name` has spent on a CPU (`None`: no such thread).
    fn thread_cpu_ns(&self, name: &str) -> Option<u64> {
        let dir = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|t| t.ok())
            .find(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .and_then(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
    }

    /// Nanoseconds on a CPU of the collector thread and of every fdr thread (`fdr-*`).
    fn fdr_threads_cpu_ns(&self) -> (u64, u64) {
        let dir = format!("/proc/{}/task", self.child.id());
        let (mut collector, mut all) = (0, 0);
        for t in std::fs::read_dir(dir)
            .expect("task dir")
            .filter_map(|t| t.ok())
        {
            let Ok(comm) = std::fs::read_to_string(t.path().join("comm")) else {
                continue;
            };
            if !comm.starts_with("fdr-") {
                continue;
            }
            let ns = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
            all += ns;
            if comm.trim() == "fdr-collector" {
                collector += ns;
            }
        }
        (collector, all)
    }

    /// Nanoseconds every thread of the process has spent on a CPU.
    fn cpu_ns(&self) -> u64 {
        let dir = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(dir)
            .expect("task dir")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Sends `n` requests over `CONNECTIONS` keep-alive connections.
async fn load(port: u16, n: usize) {
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        clients.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            for i in (c..n).step_by(CONNECTIONS) {
                let req = Request::get(format!("http://127.0.0.1:{port}/user?id={i}"))
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let resp = sender.send_request(req).await.expect("response");
                let _ = resp.into_body().collect().await.expect("body");
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
}

fn drive() {
    if !std::path::Path::new("/proc/self/task").exists() {
        eprintln!("e2e: needs /proc (Linux); skipped");
        return;
    }
    // `off`, `on`, then `on` less each component.
    let names: Vec<&str> = ["off", "on"].into_iter().chain(ABLATIONS).collect();
    let services: Vec<Service> = names.iter().map(|m| Service::start(m)).collect();
    let on = &services[1];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    // Warm them up (connections, allocator, the recorder's pool).
    for s in &services {
        rt.block_on(load(s.port, REQUESTS_PER_ROUND));
    }
    let started = Instant::now();
    let sampler_before = on.thread_cpu_ns("fdr-sampler");
    // Per service, its CPU ns per request in each round.
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); services.len()];
    let (mut ratios, mut collector, mut fdr_threads) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Each round starts with another service, and half of them run backwards, so no
        // service always follows the same one.
        let n = services.len();
        let mut order: Vec<usize> = (0..n).map(|i| (i + round) % n).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let s = &services[i];
            let before = s.cpu_ns();
            let threads_before = (i == 1).then(|| on.fdr_threads_cpu_ns());
            rt.block_on(load(s.port, REQUESTS_PER_ROUND));
            per[i].push((s.cpu_ns() - before) as f64 / REQUESTS_PER_ROUND as f64);
            if let Some((c0, t0)) = threads_before {
                let (c1, t1) = on.fdr_threads_cpu_ns();
                collector.push(c1.saturating_sub(c0) as f64 / REQUESTS_PER_ROUND as f64);
                fdr_threads.push(t1.saturating_sub(t0) as f64 / REQUESTS_PER_ROUND as f64);
            }
        }
        ratios.push(per[1][round] / per[0][round]);
    }
    eprintln!(
        "e2e: {} rounds of {} requests to each of {} services in {:.1?}",
        ROUNDS,
        REQUESTS_PER_ROUND,
        services.len(),
        started.elapsed()
    );
    match (sampler_before, on.thread_cpu_ns("fdr-sampler")) {
        (Some(a), Some(b)) => {
            let share = (b - a) as f64 / started.elapsed().as_nanos() as f64;
            report("os.sampler_cpu_share", share);
        }
        _ => eprintln!("e2e: the traced service has no fdr-sampler thread (OS view off?)"),
    }
    report("e2e.cpu_per_request_ns_off", median(per[0].clone()));
    report("e2e.cpu_per_request_ns_on", median(per[1].clone()));
    report(FIGURE, median(ratios));
    let sampler = 2 + ABLATIONS
        .iter()
        .position(|a| *a == "sampler")
        .expect("the sampler ablation");
    let os_ratios: Vec<f64> = per[1]
        .iter()
        .zip(&per[sampler])
        .map(|(a, b)| a / b)
        .collect();
    report("os.cpu_per_request_ratio", median(os_ratios));
    for (k, name) in ABLATIONS.iter().enumerate() {
        let diffs: Vec<f64> = per[1].iter().zip(&per[k + 2]).map(|(a, b)| a - b).collect();
        report(&format!("e2e.component.{name}_ns"), median(diffs));
    }
    report("e2e.component.collector_ns", median(collector));
    report("e2e.component.fdr_threads_ns", median(fdr_threads));
    let mut services = services;
    // The `on` service writes the artifact when its standard input closes.
    drop(services.remove(1));
    if let Some(path) = std::env::var_os("FDR_E2E_TRACE") {
        eprintln!(
            "e2e: the traced service's flight recorder: {}",
            path.to_string_lossy()
        );
    }
}

/// `os.stack_capture_ns`: the median of 201 captures (`fdr_recorder::os::stack_of`) of a
/// recorded thread blocked in the kernel inside a scope (the usual long scope; on x86_64 read
/// from its saved registers, with no signal). `os.stack_capture_running_ns`: the same for a
/// thread spinning on a CPU inside a scope (the capture signal, its handler's copy, unwinding).
fn stack_capture() {
    if !std::path::Path::new("/proc/self/task").exists() {
        return;
    }
    fdr_recorder::start(fdr_recorder::Config {
        os: fdr_recorder::OsConfig::platform_default(),
        ..fdr_recorder::Config::default()
    })
    .expect("recorder starts");
    let (tx, rx) = std::sync::mpsc::channel();
    let (wake_tx, wake) = std::sync::mpsc::channel::<()>();
    let sleeper = std::thread::Builder::new()
        .name("e2e-sleeper".into())
        .spawn(move || {
            let _r = fdr_recorder::region("asleep");
            tx.send(os_tid()).expect("send");
            // Blocked in the kernel, as a long scope is; woken (and blocked again at once)
            // before each capture, so each finds a new block.
            while wake.recv().is_ok() {}
        })
        .expect("thread");
    let tid = rx.recv().expect("tid");
    let mut wake_up = || wake_tx.send(()).expect("wake");
    blocked_captures(tid, &mut wake_up);
    drop(wake_tx);
    sleeper.join().expect("sleeper");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let spinner = std::thread::Builder::new()
        .name("e2e-spinner".into())
        .spawn(move || {
            let _r = fdr_recorder::region("spinning");
            tx.send(os_tid()).expect("send");
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .expect("thread");
    let tid = rx.recv().expect("tid");
    captures("os.stack_capture_running_ns", tid, &mut || {});
    cpu_samples_kept(tid);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spinner.join().expect("spinner");
}

/// `os.cpu_samples_kept_share`: with CPU profiling at 99 Hz for 3 s, the CPU-timer stacks
/// recorded of the spinning thread `tid` over the stacks its CPU time asked for (its
/// `schedstat` on-CPU time times the rate). Every other recorded thread is idle meanwhile.
fn cpu_samples_kept(tid: u64) {
    const HZ: u32 = 99;
    let cpu_ns = || {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .expect("schedstat")
    };
    let before = fdr_recorder::os::stats();
    let cpu_before = cpu_ns();
    let profile = match fdr_recorder::os::cpu_profile(HZ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("os: os.cpu_samples_kept_share: no CPU profiling ({e})");
            return;
        }
    };
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_ns() - cpu_before;
    drop(profile);
    // Let the sampler take the copies still waiting.
    std::thread::sleep(Duration::from_millis(100));
    let after = fdr_recorder::os::stats();
    let asked = cpu as f64 * f64::from(HZ) / 1e9;
    let kept = (after.cpu_samples - before.cpu_samples) as f64;
    eprintln!(
        "os: os.cpu_samples_kept_share: {kept} CPU samples of {asked:.0} asked ({:.2} s on CPU), {} dropped in the handler (a copy still waiting)",
        cpu as f64 / 1e9,
        after.cpu_samples_dropped - before.cpu_samples_dropped
    );
    if asked >= 1.0 {
        report("os.cpu_samples_kept_share", kept / asked);
    }
}

/// The calling thread's OS id.
fn os_tid() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse::<u64>().ok())
        .expect("thread id")
}

/// The methods a blocked thread's capture is measured with, in one run, interleaved: by the
/// figure's stem. `os.stack_capture` is the sampler's first stack of a long scope (the
/// counters from the sample it just recorded, the copy cut where the thread's last unwind
/// read); `os.stack_capture_on_demand` is `stack_of` (its own counters read); and
/// `os.stack_capture_whole_stack` the capture before copies were cut and counters shared
/// (own counters, the stack copied to its top).
const BLOCKED_METHODS: [(&str, fdr_recorder::os::CaptureMethod); 3] = [
    (
        "os.stack_capture",
        fdr_recorder::os::CaptureMethod::LongScope,
    ),
    (
        "os.stack_capture_on_demand",
        fdr_recorder::os::CaptureMethod::OnDemand,
    ),
    (
        "os.stack_capture_whole_stack",
        fdr_recorder::os::CaptureMethod::WholeStack,
    ),
];
/// Rounds of [`blocked_captures`], and captures per method in a round.
const CAPTURE_ROUNDS: usize = 7;
const CAPTURES_PER_ROUND: usize = 29;

/// The host's 1-minute load average (`/proc/loadavg`).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `os.stack_capture_ns` and its kin: captures of thread `tid`, blocked in the kernel inside
/// a scope and woken (`wake`, then blocked again at once) 2 ms before each capture, so that
/// each finds a new block, by every method of [`BLOCKED_METHODS`] in turn (the order rotates),
/// in [`CAPTURE_ROUNDS`] rounds. Per method: `_ns`, the median wall time of every capture;
/// `_cpu_ns`, the median CPU time the capturing thread spent in it (system calls included,
/// waits for a CPU not: what a loaded host cannot inflate); `_min_round_ns` and
/// `_min_round_cpu_ns`, the least of the rounds' medians (the round the host disturbed
/// least). `os.stack_capture_again_ns`: the same thread captured again at once, still
/// blocked where the first capture found it (the later stacks of one long scope, whose
/// counters no sample read). `os.capture_load_average`: the host's load average over the captures.
fn blocked_captures(tid: u64, wake: &mut dyn FnMut()) {
    let n = BLOCKED_METHODS.len();
    // Per method, per round: (wall, cpu) of each capture.
    let mut times: Vec<Vec<Vec<(f64, f64)>>> = vec![vec![Vec::new(); CAPTURE_ROUNDS]; n];
    let (mut again, mut failed, mut interrupted) = (Vec::new(), 0, 0);
    let load_before = load_average();
    for round in 0..CAPTURE_ROUNDS {
        for k in 0..CAPTURES_PER_ROUND {
            for j in 0..n {
                let m = (j + k + round) % n;
                wake();
                std::thread::sleep(Duration::from_millis(2));
                match fdr_recorder::os::timed_capture(tid, BLOCKED_METHODS[m].1) {
                    Ok(t) if !t.stack.frames.is_empty() => {
                        interrupted += usize::from(t.stack.interrupted);
                        times[m][round].push((t.wall_ns as f64, t.cpu_ns as f64));
                    }
                    _ => failed += 1,
                }
                // A later stack of the same long scope: no sample read the counters.
                if m == 0
                    && let Ok(t) = fdr_recorder::os::timed_capture(
                        tid,
                        fdr_recorder::os::CaptureMethod::OnDemand,
                    )
                    && !t.stack.frames.is_empty()
                    && !t.stack.interrupted
                {
                    again.push(t.wall_ns as f64);
                }
            }
        }
    }
    let load = (load_before + load_average()) / 2.0;
    eprintln!(
        "os: blocked captures: {CAPTURE_ROUNDS} rounds of {CAPTURES_PER_ROUND} per method, {interrupted} by the signal, {failed} failed, load average {load_before:.1} then {:.1}",
        load_average()
    );
    report("os.capture_load_average", load);
    for (m, (stem, _)) in BLOCKED_METHODS.iter().enumerate() {
        let all: Vec<(f64, f64)> = times[m].iter().flatten().copied().collect();
        if all.is_empty() {
            eprintln!("os: {stem}: no stack captured");
            continue;
        }
        let rounds: Vec<(f64, f64)> = times[m]
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                (
                    median(r.iter().map(|t| t.0).collect::<Vec<_>>()),
                    median(r.iter().map(|t| t.1).collect::<Vec<_>>()),
                )
            })
            .collect();
        let min = |f: fn(&(f64, f64)) -> f64| rounds.iter().map(f).fold(f64::INFINITY, f64::min);
        report(
            &format!("{stem}_ns"),
            median(all.iter().map(|t| t.0).collect::<Vec<_>>()),
        );
        report(
            &format!("{stem}_cpu_ns"),
            median(all.iter().map(|t| t.1).collect::<Vec<_>>()),
        );
        report(&format!("{stem}_min_round_ns"), min(|t| t.0));
        report(&format!("{stem}_min_round_cpu_ns"), min(|t| t.1));
    }
    if !again.is_empty() {
        report("os.stack_capture_again_ns", median(again));
    }
}

/// Captures thread `tid` 201 times, 2 ms apart (each after `before`), and reports the median
/// time as `figure`.
fn captures(figure: &str, tid: u64, before: &mut dyn FnMut()) {
    let mut times = Vec::new();
    let (mut failed, mut interrupted) = (0, 0);
    for _ in 0..201 {
        before();
        std::thread::sleep(Duration::from_millis(2));
        let t = Instant::now();
        match fdr_recorder::os::stack_of(tid) {
            Ok(s) if !s.frames.is_empty() => {
                times.push(t.elapsed().as_nanos() as f64);
                interrupted += usize::from(s.interrupted);
            }
            _ => failed += 1,
        }
    }
    if times.is_empty() {
        eprintln!("os: {figure}: no stack captured ({failed} failures)");
        return;
    }
    eprintln!(
        "os: {figure}: {} captures ({interrupted} by the signal), {failed} failed",
        times.len()
    );
    report(figure, median(times));
}
