//! The axum example end to end, as an operator meets it (docs/OPERATIONS.md, "The axum
//! example"): `examples/axum-service` runs on loopback under its own load generator, its
//! fault switches on after a healthy start, the sentinel catches the breached latency SLO
//! and writes an incident, the incident is listed and downloaded through the admin
//! endpoint, and `fdr diagnose` ranks the fault first with the cache lock's line. The
//! service is stopped with SIGTERM and must report that every OpenTelemetry span it
//! exported carries fdr's task id.
//!
//! Everything after the build is bounded by [`BUDGET`]; the processes are killed on any
//! failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::{cargo, root, run, target_dir};

/// The run from the service's start to its stop and the diagnosis.
const BUDGET: Duration = Duration::from_secs(60);
/// Healthy traffic before the fault.
const FAULT_AFTER: &str = "3s";
/// The load generator's run; it is stopped as soon as the incident is in.
const LOAD_SECONDS: &str = "40";
/// The rules the example's fault (a blocking call under the cache's lock) may make `fdr
/// diagnose` rank first: the contention on the lock, which explains the long polls, or the
/// long polls themselves (blocking inside polls, on that lock).
const EXPECTED_TOP: &[&str] = &["lock_contention", "long_polls"];

/// A child process killed (if still running) when dropped.
struct Running(Child, &'static str);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            eprintln!("axum-service check: killing the {}", self.1);
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Prints a child's output lines prefixed, and passes them on.
fn forward(out: impl Read + Send + 'static, prefix: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("  {prefix} | {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `cargo xtask axum-service`: the check alone, with every feature as `ci` builds them.
pub(crate) fn standalone() -> Result<()> {
    let (plain, _) = crate::features::workspace_features()?;
    check(&["--features".to_string(), plain.join(",")])
}

/// Builds the example and the CLI (with `features`, as the test step built the workspace,
/// so nothing is rebuilt for another feature set), then runs the check.
pub(crate) fn check(features: &[String]) -> Result<()> {
    run(cargo().args(["build", "--workspace"]).args(features).args([
        "--bin",
        "axum-service",
        "--bin",
        "load",
        "--bin",
        "fdr",
    ]))?;
    let bin = target_dir().join("debug");
    let dir = target_dir().join("xtask/axum-service");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    let deadline = started + BUDGET;
    run_service(&bin, &dir, deadline)?;
    eprintln!(
        "axum-service check: passed in {:.1?} (the run, after the build)",
        started.elapsed()
    );
    Ok(())
}

fn left(deadline: Instant, what: &str) -> Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .with_context(|| format!("the axum example took over {BUDGET:?}: {what}"))
}

fn run_service(bin: &Path, dir: &Path, deadline: Instant) -> Result<()> {
    let incidents = dir.join("incidents");
    let mut service = Running(
        Command::new(bin.join("axum-service"))
            .current_dir(dir)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .arg("--incidents")
            .arg(&incidents)
            .args(["--fault", "lock", "--fault-after", FAULT_AFTER])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting axum-service")?,
        "service",
    );
    let lines = forward(
        service.0.stdout.take().context("service stdout")?,
        "service",
    );
    // `listening on http://A, admin endpoint on http://B, incidents in DIR`
    let (addr, admin) = loop {
        let line = lines
            .recv_timeout(left(deadline, "waiting for the service to listen")?)
            .context("the service stopped before it listened")?;
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split(',').next().unwrap_or_default();
            let admin = rest
                .split("admin endpoint on http://")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .unwrap_or_default();
            let parse = |a: &str| {
                a.parse::<SocketAddr>()
                    .with_context(|| format!("an address in {line:?}"))
            };
            break (parse(addr)?, parse(admin)?);
        }
    };
    let mut load = Running(
        Command::new(bin.join("load"))
            .args([
                "--url",
                &format!("http://{addr}"),
                "--seconds",
                LOAD_SECONDS,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the load generator")?,
        "load generator",
    );
    let _load_lines = forward(load.0.stdout.take().context("load stdout")?, "load");

    // The incident, as an operator finds it: listed by the admin endpoint, then downloaded.
    let id = loop {
        left(deadline, "waiting for the sentinel's incident")?;
        let listing: Value = serde_json::from_slice(&http_get(admin, "/debug/fdr/incidents")?)
            .context("the incident listing is not JSON")?;
        if let Some(id) = listing["incidents"][0]["id"].as_str() {
            break id.to_owned();
        }
        ensure!(
            matches!(service.0.try_wait(), Ok(None)),
            "the service exited before writing an incident"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("axum-service check: incident {id}");
    let dump = http_get(admin, &format!("/debug/fdr/incidents/{id}"))?;
    let incident = dir.join("incident.fdr");
    std::fs::write(&incident, &dump)?;
    let _ = load.0.kill();
    let _ = load.0.wait();

    // Stop the service as an orchestrator does, and read its last word.
    let pid = rustix::process::Pid::from_raw(service.0.id() as i32).context("the service's pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .context("sending SIGTERM to the service")?;
    let status = loop {
        if let Some(status) = service.0.try_wait()? {
            break status;
        }
        left(deadline, "waiting for the service to stop after SIGTERM")?;
        std::thread::sleep(Duration::from_millis(50));
    };
    // Its last lines, up to the end of its output.
    let mut last = Vec::new();
    while let Ok(line) = lines.recv_timeout(left(deadline, "reading the service's last lines")?) {
        last.push(line);
    }
    ensure!(status.success(), "the service exited with {status}");
    let stopped = last
        .iter()
        .find_map(|l| l.split("stopped: ").nth(1))
        .context("the service did not say `stopped: ...`")?;
    // `N spans exported, M with fdr.task_id; ...`
    let numbers: Vec<u64> = stopped
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    ensure!(
        numbers.len() >= 2 && numbers[0] > 0 && numbers[0] == numbers[1],
        "every exported span must carry fdr's task id: {stopped}"
    );

    diagnose(bin, dir, &incident, deadline)
}

/// `fdr diagnose --json`: the first finding is [`EXPECTED_TOP`], critical, and names the
/// cache lock's line; `fdr tasks` names requests by their route; `fdr report` writes a page.
fn diagnose(bin: &Path, dir: &Path, incident: &Path, deadline: Instant) -> Result<()> {
    left(deadline, "before the diagnosis")?;
    let fdr = |args: &[&str]| -> Result<String> {
        let out = Command::new(bin.join("fdr"))
            .args(args)
            .arg(incident)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .output()
            .context("running fdr")?;
        ensure!(
            out.status.success(),
            "fdr {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let text = fdr(&["diagnose"])?;
    eprintln!("{text}");
    let json: Value = serde_json::from_str(&fdr(&["diagnose", "--json"])?)?;
    let top = json["outcomes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["applicable"] == true)
        .context("no finding")?;
    ensure!(
        EXPECTED_TOP.iter().any(|r| top["rule"] == *r) && top["severity"] == "critical",
        "the top finding must be a critical one of {EXPECTED_TOP:?}, not {} {}",
        top["severity"],
        top["rule"]
    );
    // Requests wait for the cache lock at either of its two `lock()` calls.
    let source = std::fs::read_to_string(root().join("examples/axum-service/src/lib.rs"))?;
    let sites: Vec<String> = source
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("self.cache.lock()"))
        .map(|(i, _)| format!(" at examples/axum-service/src/lib.rs:{}:", i + 1))
        .collect();
    ensure!(!sites.is_empty(), "the example locks no cache");
    let evidence: Vec<&str> = top["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        evidence
            .iter()
            .any(|e| e.contains("mutex") && sites.iter().any(|site| e.contains(site))),
        "the top finding must blame the cache lock (one of {sites:?}): {evidence:?}"
    );
    let tasks = fdr(&["tasks"])?;
    ensure!(
        tasks.contains("http GET /user/{id}"),
        "requests must be tasks named by their route: {tasks}"
    );
    let report = dir.join("report.html");
    fdr(&["report", "-o", report.to_str().context("non-UTF-8 path")?])?;
    ensure!(report.is_file(), "fdr report wrote no {}", report.display());
    Ok(())
}

/// A GET on loopback (HTTP/1.0: one request, the body up to the close); the body of a 200.
fn http_get(addr: SocketAddr, path: &str) -> Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = Vec::new();
    s.take(256 << 20).read_to_end(&mut response)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("GET {path}: no response head"))?;
    let head = String::from_utf8_lossy(&response[..head_end]);
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(response[head_end + 4..].to_vec())
}
