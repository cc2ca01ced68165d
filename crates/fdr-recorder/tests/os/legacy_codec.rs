//! A codec module whose decoder blocks the thread that calls it: the kind of synchronous
//! call that ends up inside an async task.
#![allow(unreachable_pub, reason = "a test module")]

use std::time::Duration;

/// The text of the blocking call in [`decode_legacy`] (tests find its line by it).
pub const BLOCKING_CALL: &str = "std::thread::sleep(wait);";

/// Decodes a frame the old way: checksums it, then waits for the device (a sleep).
#[inline(never)]
pub fn decode_legacy(frame: &[u8], wait: Duration) -> u32 {
    let checksum = frame
        .iter()
        .fold(0u32, |a, &b| a.rotate_left(5) ^ u32::from(b));
    std::thread::sleep(wait);
    std::hint::black_box(checksum)
}

/// Decodes a frame by brute force: spins on the CPU for `busy`.
#[inline(never)]
pub fn decode_brute_force(frame: &[u8], busy: Duration) -> u32 {
    let start = std::time::Instant::now();
    let mut h = 0u32;
    while start.elapsed() < busy {
        for &b in frame {
            h = std::hint::black_box(h.rotate_left(5) ^ u32::from(b));
        }
    }
    h
}

/// Polls the device until `stop` is set: sleeps between looks.
#[inline(never)]
pub fn poll_device(stop: &std::sync::atomic::AtomicBool) -> u32 {
    let mut looks = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        looks += 1;
    }
    std::hint::black_box(looks)
}

/// Waits for the device's reply on `reply`: blocks in `recv` (a futex wait).
#[inline(never)]
pub fn await_device_reply(reply: std::sync::mpsc::Receiver<u32>) -> u32 {
    let r = reply.recv().unwrap_or(0);
    std::hint::black_box(r)
}
