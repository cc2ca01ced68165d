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
//! The traced service runs with the OS view on (`OsConfig::platform_default()`), so E1's
//! ratio includes the sampler; a third service, traced the same way without the OS view
//! (`FDR_E2E_SERVER=noos`), takes its turn in every round, and `os.cpu_per_request_ratio` is
//! the median of the rounds' view-on over view-off ratios: the OS view's own cost per
//! request. `os.sampler_cpu_share` is the sampler thread's (`fdr-sampler`, found by name in
//! `/proc/PID/task`) CPU time over the rounds' wall time: its share of one core
//! (E2: <= 0.002). `os.stack_capture_ns` is the median time of one stack capture
//! (`fdr_recorder::os::stack_of`) of a recorded thread blocked in the kernel inside a scope,
//! in this process, each of a new block (E2: <= 20 us); `os.stack_capture_again_ns` the same
//! thread captured again at once, still blocked where the first found it (the later stacks of
//! one long scope); `os.stack_capture_running_ns` the same for a thread
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

fn main() {
    match std::env::var("FDR_E2E_SERVER").as_deref() {
        Ok("on") => serve(true, true),
        Ok("noos") => serve(true, false),
        Ok("off") => serve(false, false),
        _ => {
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
    }
}

/// The request handler: parse, three phases, a log line; with `fdr`, each phase a region.
async fn handle(req: Request<Incoming>, fdr: bool) -> Result<Response<Full<Bytes>>, Infallible> {
    let phase = |name: &'static str, f: &mut dyn FnMut()| {
        if fdr {
            fdr_recorder::with_region(name, f)
        } else {
            f()
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

/// A service process: prints its port, serves until its standard input closes. With `fdr`,
/// the recorder and sentinel run, with the OS view if `os`.
fn serve(fdr: bool, os: bool) {
    let dir = std::env::temp_dir().join(format!("fdr-e2e-incidents-{}", std::process::id()));
    let _sentinel = fdr.then(|| {
        fdr_recorder::start(fdr_recorder::Config {
            os: fdr_recorder::OsConfig::platform_default().filter(|_| os),
            ..fdr_recorder::Config::default()
        })
        .expect("recorder starts");
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
        if let (true, Some(path)) = (fdr, std::env::var_os("FDR_E2E_TRACE")) {
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
                let h = handle(req, fdr);
                async move {
                    if fdr {
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
    let off = Service::start("off");
    let on = Service::start("on");
    let noos = Service::start("noos");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    // Warm them up (connections, allocator, the recorder's pool).
    for s in [&off, &on, &noos] {
        rt.block_on(load(s.port, REQUESTS_PER_ROUND));
    }
    let started = Instant::now();
    let sampler_before = on.thread_cpu_ns("fdr-sampler");
    let (mut per_off, mut per_on, mut ratios, mut os_ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let mut cost = [0.0; 3];
        // Each service goes first, second and third in turn.
        for k in 0..3 {
            let i = (round + k) % 3;
            let s = [&off, &on, &noos][i];
            let before = s.cpu_ns();
            rt.block_on(load(s.port, REQUESTS_PER_ROUND));
            cost[i] = (s.cpu_ns() - before) as f64 / REQUESTS_PER_ROUND as f64;
        }
        per_off.push(cost[0]);
        per_on.push(cost[1]);
        ratios.push(cost[1] / cost[0]);
        os_ratios.push(cost[1] / cost[2]);
    }
    eprintln!(
        "e2e: {} rounds of {} requests to each of three services in {:.1?}",
        ROUNDS,
        REQUESTS_PER_ROUND,
        started.elapsed()
    );
    match (sampler_before, on.thread_cpu_ns("fdr-sampler")) {
        (Some(a), Some(b)) => {
            let share = (b - a) as f64 / started.elapsed().as_nanos() as f64;
            report("os.sampler_cpu_share", share);
        }
        _ => eprintln!("e2e: the traced service has no fdr-sampler thread (OS view off?)"),
    }
    report("e2e.cpu_per_request_ns_off", median(per_off));
    report("e2e.cpu_per_request_ns_on", median(per_on));
    report(FIGURE, median(ratios));
    report("os.cpu_per_request_ratio", median(os_ratios));
    drop(noos);
    drop(on);
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
    let mut again = Vec::new();
    let mut wake_up = || wake_tx.send(()).expect("wake");
    captures("os.stack_capture_ns", tid, &mut wake_up, Some(&mut again));
    if !again.is_empty() {
        report("os.stack_capture_again_ns", median(again));
    }
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
    captures("os.stack_capture_running_ns", tid, &mut || {}, None);
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

/// Captures thread `tid` 201 times, 2 ms apart (each after `before`), and reports the median
/// time as `figure`; with `again`, captures it once more right after each and collects those
/// times (a thread still blocked where the first capture found it).
fn captures(figure: &str, tid: u64, before: &mut dyn FnMut(), mut again: Option<&mut Vec<f64>>) {
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
        if let Some(again) = again.as_deref_mut() {
            let t = Instant::now();
            if fdr_recorder::os::stack_of(tid).is_ok_and(|s| !s.frames.is_empty() && !s.interrupted)
            {
                again.push(t.elapsed().as_nanos() as f64);
            }
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
