//! Uses every recording call of the facade, as an instrumented library would.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use fdr::FdrFutureExt;

fn handler(user: u32, shared: &fdr::sync::Mutex<u32>) -> u32 {
    let _task = fdr::task("request");
    let sum = fdr::with_region("auth", || user * 2);
    let _db = fdr::region("db");
    *shared.lock().unwrap() += 1;
    fdr::blocking(fdr::BlockReason::Io, || std::hint::black_box(sum));
    fdr::log!("db", "static message");
    fdr::log!("db", "user {user} sum {sum}");
    fdr::log("db", "plain");
    let phase = fdr::async_region("phase");
    let _ = phase.id();
    sum
}

/// Polls a future that never waits to completion.
fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future was expected to be ready"),
    }
}

fn main() {
    let recorder = fdr::start(fdr::Config::default()).expect("start never fails");
    let _ = recorder;
    let shared = fdr::sync::Mutex::new(0);
    let mut total = 0;
    for i in 0..1000 {
        total += run_ready(
            async { handler(i, &shared) }
                .in_region("handler")
                .traced("request future"),
        );
    }
    let mut dump = Vec::new();
    let written = fdr::flight().write_to(&mut dump);
    let recording = cfg!(feature = "record");
    assert_eq!(fdr::enabled(), recording);
    assert_eq!(written.is_ok(), recording, "{written:?}");
    assert_eq!(dump.is_empty(), !recording);
    assert_eq!(*shared.lock().unwrap(), 1000);
    println!(
        "compile-out check: record={recording}, total={total}, dump={} bytes, lost={}",
        dump.len(),
        fdr::stats().lost_events()
    );
}
