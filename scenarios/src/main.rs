//! fdr's realistic scenario suite.
//!
//! Small real services, each with a fault written the way users write them, instrumented
//! only through the `fdr` facade as the README's quick start shows (the flight recorder on,
//! requests as traced tasks, tokio workers hooked, regions and logs where a user would put
//! them), driven by a loopback load generator that measures latency like a user's load test.
//! Each run has a healthy warm-up, then the fault for a bounded window, at whose end the
//! flight recorder is dumped (`fdr::flight().write_to`). The suite then diagnoses each dump
//! with `fdr_analyzer` (the same profile and rules as `fdr diagnose --json`) and compares
//! the top finding with the scenario's golden expectation (`expect`): its rule, that it is
//! above info, and the fault's `file:line` taken from a `// FAULT: name` marker in the
//! scenario's source; for the healthy scenarios, that nothing is above info.
//!
//! ```text
//! fdr-scenarios list                                  the scenarios and what each expects
//! fdr-scenarios run NAME --out DIR                    one scenario: DIR/dump.fdr, DIR/run.json
//! fdr-scenarios suite [--only NAME] [--json] [--out DIR]
//!                                                     every scenario in turn, diagnosed and judged
//! fdr-scenarios burn --seconds N [--threads N]        the CPU-bound sibling process
//! ```
//!
//! The scenarios (one module each; all traffic on 127.0.0.1):
//! `std_mutex`, `tokio_mutex`, `slow_downstream`, `cpu_heavy`, `blocking_sleep`,
//! `legacy_codec` (the blocking call in `codec/legacy.rs`), `rpc_spawned` and `rpc_inline`
//! (one blocking fault, a task per request or handled in the connection task), `healthy`,
//! `healthy_busy_sibling` (another process keeps every core busy), `task_leak`,
//! `serial_worker`, `oversubscribed`, `recorder_loss`, and `thread_per_conn` (std threads,
//! `fdr::task` per request, an `fdr::sync::Mutex`).
//!
//! `tests/golden.rs` runs the suite and requires every scenario to be diagnosed right but
//! for its listed known misses; `cargo xtask bench` reports `diagnose.scenarios_right` and
//! `diagnose.scenarios_total` from a release run of the suite.

#![forbid(unsafe_code)]

mod blocking_sleep;
mod cpu_heavy;
mod expect;
mod harness;
mod healthy;
mod legacy_codec;
mod oversubscribed;
mod recorder_loss;
mod rpc_blocking;
mod serial_worker;
mod slow_downstream;
mod std_mutex;
mod svc;
mod task_leak;
mod thread_per_conn;
mod tokio_mutex;

use std::path::PathBuf;
use std::time::Duration;

use svc::{BoxError, Ctx};

/// The healthy warm-up before the fault, by default.
const WARMUP: Duration = Duration::from_millis(1000);
/// The fault window, by default.
const FAULT: Duration = Duration::from_millis(2500);

const USAGE: &str = "usage: fdr-scenarios list
       fdr-scenarios run NAME --out DIR [--warmup-ms N] [--fault-ms N]
       fdr-scenarios suite [--only NAME] [--json] [--out DIR] [--warmup-ms N] [--fault-ms N]
       fdr-scenarios burn --seconds N [--threads N]";

fn main() {
    match cli() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("fdr-scenarios: {e}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// Options shared by `run` and `suite`.
struct Opts {
    out: Option<PathBuf>,
    only: Option<String>,
    json: bool,
    warmup: Duration,
    fault: Duration,
    seconds: Option<f64>,
    threads: Option<usize>,
}

fn parse(args: &[String]) -> Result<Opts, BoxError> {
    let mut o = Opts {
        out: None,
        only: None,
        json: false,
        warmup: WARMUP,
        fault: FAULT,
        seconds: None,
        threads: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        let ms = |v: &str, lo: u64, hi: u64| -> Result<Duration, BoxError> {
            let n: u64 = v.parse().map_err(|e| format!("{a} {v}: {e}"))?;
            if !(lo..=hi).contains(&n) {
                return Err(format!("{a} must be between {lo} and {hi}").into());
            }
            Ok(Duration::from_millis(n))
        };
        match a.as_str() {
            "--out" => o.out = Some(value()?.into()),
            "--only" => o.only = Some(value()?.clone()),
            "--json" => o.json = true,
            "--warmup-ms" => o.warmup = ms(value()?, 100, 60_000)?,
            "--fault-ms" => o.fault = ms(value()?, 200, 60_000)?,
            "--seconds" => {
                let s: f64 = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
                if !(0.1..=600.0).contains(&s) {
                    return Err("--seconds must be between 0.1 and 600".into());
                }
                o.seconds = Some(s);
            }
            "--threads" => {
                o.threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?)
            }
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    Ok(o)
}

fn cli() -> Result<i32, BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(verb) = args.first() else {
        return Err("no command".into());
    };
    match verb.as_str() {
        "list" => {
            for s in expect::SCENARIOS {
                println!("{:<22} {}", s.name, s.fault);
            }
            Ok(0)
        }
        "run" => {
            let name = args.get(1).ok_or("run needs a scenario name")?;
            let scenario = expect::scenario(name).ok_or_else(|| format!("no scenario `{name}`"))?;
            let o = parse(&args[2..])?;
            let out = o.out.ok_or("run needs --out DIR")?;
            std::fs::create_dir_all(&out)?;
            let ctx = Ctx {
                out,
                warmup: o.warmup,
                fault: o.fault,
            };
            (scenario.run)(&ctx)?;
            Ok(0)
        }
        "suite" => {
            let o = parse(&args[1..])?;
            let all_ran = harness::suite(&harness::SuiteArgs {
                only: o.only,
                json: o.json,
                out: o
                    .out
                    .unwrap_or_else(|| std::env::temp_dir().join("fdr-scenarios")),
                warmup: o.warmup,
                fault: o.fault,
            })?;
            Ok(if all_ran { 0 } else { 1 })
        }
        "burn" => {
            let o = parse(&args[1..])?;
            let seconds = o.seconds.ok_or("burn needs --seconds N")?;
            healthy::burn(Duration::from_secs_f64(seconds), o.threads.unwrap_or(2));
            Ok(0)
        }
        _ => Err(format!("unknown command `{verb}`").into()),
    }
}
