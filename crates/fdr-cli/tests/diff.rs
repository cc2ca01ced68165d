//! `fdr diff` on real traces: two runs of a small thread-per-connection server on
//! 127.0.0.1, recorded by the flight recorder. The baseline runs longer, at a higher
//! request rate, and closes its connections before the dump; the incident's `db` region is
//! eight times slower and its connections are still open when it dumps. The diff must put
//! the `db` region first, per request, and leave the connections out of the comparison.
//!
//! Each run is this test binary started again as a child process (`FDR_DIFF_RUN` set),
//! so the recorder, a process-global, starts once per run.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the server and its clients, then dumps the flight recorder to `out`.
fn serve_and_dump(db_ms: u64, run_ms: u64, close_before_dump: bool, out: &Path) {
    fdr_recorder::start(fdr_recorder::Config {
        flight: Some(fdr_recorder::FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 64 << 20,
        }),
        program: "diff-server".into(),
        ..fdr_recorder::Config::default()
    })
    .map(std::mem::forget)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const CLIENTS: usize = 4;
    let server = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..CLIENTS {
            let (s, _) = listener.accept().unwrap();
            s.set_nodelay(true).unwrap();
            conns.push(std::thread::spawn(move || {
                let _conn = fdr_recorder::task("conn");
                let mut w = s.try_clone().unwrap();
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    let _req = fdr_recorder::task("GET /user");
                    let id: u64 = {
                        let _r = fdr_recorder::region("parse");
                        line.trim().parse().unwrap_or(0)
                    };
                    {
                        let _r = fdr_recorder::region("db");
                        std::thread::sleep(Duration::from_millis(db_ms));
                    }
                    let reply = {
                        let _r = fdr_recorder::region("render");
                        format!("user {id}\n")
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            }));
        }
        for c in conns {
            c.join().unwrap();
        }
    });
    let deadline = Instant::now() + Duration::from_millis(run_ms);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    writeln!(w, "{n}").unwrap();
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    n += 1;
                }
                (w, r)
            })
        })
        .collect();
    let open: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    if close_before_dump {
        drop(open);
        server.join().unwrap();
    }
    let mut f = std::fs::File::create(out).unwrap();
    fdr_recorder::flight().write_to(&mut f).unwrap();
    f.sync_all().unwrap();
    // With `open` still held (and dropped only now), B's connections were alive at the dump.
}

/// Runs one recording in a child process.
fn record(name: &str, db_ms: u64, run_ms: u64, close: bool) -> PathBuf {
    let out = std::env::temp_dir().join(format!("fdr-diff-{}-{name}.fdr", std::process::id()));
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_run", "--nocapture", "--test-threads=1"])
        .env(
            "FDR_DIFF_RUN",
            format!("{db_ms},{run_ms},{close},{}", out.display()),
        )
        .status()
        .unwrap();
    assert!(status.success(), "the {name} run failed");
    assert!(out.exists(), "the {name} run dumped nothing");
    out
}

/// The child's entry point: does nothing unless started by [`record`].
#[test]
fn child_run() {
    let Ok(spec) = std::env::var("FDR_DIFF_RUN") else {
        return;
    };
    let v: Vec<&str> = spec.splitn(4, ',').collect();
    serve_and_dump(
        v[0].parse().unwrap(),
        v[1].parse().unwrap(),
        v[2].parse().unwrap(),
        Path::new(v[3]),
    );
}

#[test]
fn a_slow_db_region_ranks_first_whatever_the_windows_and_connections() {
    let a = record("baseline", 1, 1500, true);
    let b = record("incident", 8, 600, false);
    let fdr = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_fdr"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
    let v: serde_json::Value = serde_json::from_slice(&fdr(&["diff", "--json", sa, sb])).unwrap();
    let top = &v["phases"][0];
    assert_eq!(top["name"], "db", "{v:#}");
    assert_eq!(top["task"], "GET /user", "{v:#}");
    assert_eq!(top["per"], "request");
    assert!(top["delta_per_ns"].as_f64().unwrap() > 0.0, "{top}");
    // The incident's connections were alive at its dump: left out, and said so.
    assert!(
        v["b"]["excluded"]["tasks_alive_at_end"].as_u64().unwrap() >= 4,
        "{v:#}"
    );
    let conn = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "conn")
        .expect("the connections are listed");
    assert_eq!(conn["b"]["count"], 0);
    assert_eq!(conn["delta_mean_ns"], serde_json::Value::Null);
    assert_eq!(v["requests"][0]["name"], "GET /user", "{v:#}");
    // Text: the first phase row is the db region, and the windows carry wall-clock times.
    let text = String::from_utf8(fdr(&["diff", sa, sb])).unwrap();
    let first = text
        .lines()
        .skip_while(|l| !l.starts_with("task"))
        .nth(1)
        .unwrap();
    assert!(first.contains(" db "), "{text}");
    assert!(text.lines().next().unwrap().contains("Z to "), "{text}");
    let _ = (std::fs::remove_file(&a), std::fs::remove_file(&b));
}
