//! Loom model of the OS view's capture area, handed between the stack-capture signal
//! handler and the sampler.
#![allow(
    unsafe_code,
    reason = "the model's handler calls the area's raw copy, as the signal handler does"
)]

use loom::sync::Arc;
use loom::thread;

use crate::os_signal::{Area, OUTCOME_COPIED, OUTCOME_REQUESTED, REQUESTED};

/// A signal handler's side of the capture protocol: claims the area (a capture signal only
/// if requested, a CPU timer also if idle) and writes a copy tagged `tag` in its registers
/// and every stack byte.
fn handler(area: &Area, timer: bool, tag: u8) {
    if let Some(requested) = area.begin_write(timer) {
        let src = [tag; 4];
        let flag = if requested { OUTCOME_REQUESTED } else { 0 };
        // SAFETY: `src` is readable for its 4 bytes; we hold the area (`begin_write`).
        unsafe {
            area.finish_write(
                [u64::from(tag), 0, 0, 0],
                src.as_ptr(),
                4,
                OUTCOME_COPIED | flag,
                u64::from(tag),
            )
        };
    }
}

/// Capture area hand-off: the sampler requests a stack and races a capture signal's handler
/// and a CPU timer's, taking a copy or withdrawing the request. A copy is read only once
/// complete (never torn: its registers and every byte carry one writer's tag; loom checks
/// that no read overlaps a write), and a withdrawn request is never answered.
#[test]
fn capture_area_handoff() {
    loom::model(|| {
        let area = Arc::new(Area::new(4));
        assert!(area.assign(1, 0, 100));
        area.request().unwrap();
        let capture = {
            let a = area.clone();
            thread::spawn(move || handler(&a, false, 1))
        };
        let timer = {
            let a = area.clone();
            thread::spawn(move || handler(&a, true, 2))
        };
        let read = |a: &Area| {
            a.take(|c| {
                assert_eq!(c.at_ticks, c.regs[0], "a torn capture time");
                (c.regs[0], c.stack.to_vec(), c.requested)
            })
        };
        let first = read(&area);
        let cancelled = first.is_none() && area.state() == REQUESTED && area.cancel();
        capture.join().unwrap();
        timer.join().unwrap();
        let second = read(&area);
        let copies: Vec<_> = first.into_iter().chain(second).collect();
        for (tag, bytes, requested) in &copies {
            assert_eq!(bytes, &vec![*tag as u8; 4], "a torn copy");
            if cancelled {
                assert!(!requested, "a withdrawn request was answered");
            }
        }
        if !cancelled {
            assert!(
                copies.iter().any(|c| c.2),
                "the request was neither answered nor withdrawn: {copies:?}"
            );
        }
    });
}
