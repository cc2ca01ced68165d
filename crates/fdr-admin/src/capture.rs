//! On-demand captures: one at a time in the process, a cooldown between them, output
//! capped in bytes, ended at once when the client leaves.
//!
//! The recorder's capture thread writes the capture into a [`CaptureWriter`], which never
//! blocks it: whole batches go to the response body through a bounded channel, and a client
//! that lets the channel fill loses its capture (the body is then cut with an error). The
//! writer frames the stream itself, so the byte cap falls between two batches and the trace
//! is closed with a well-formed end marker.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fdr_format::framing::{self, END_MARKER_MAX_LEN, Unit};
use hyper::StatusCode;
use tokio::sync::{Notify, mpsc};

use crate::body::{OnDrop, StreamStatus};
use crate::stream::Refusal;

/// Batches waiting for the client, at most (a sealed chunk is one 64 KiB batch: about
/// 8 MiB). A client further behind loses its capture.
pub(crate) const QUEUE_BATCHES: usize = 128;
/// `Retry-After` when a capture started outside this endpoint is running (its end is
/// unknown).
const RETRY_FOREIGN_SECS: u64 = 5;

/// Why a capture ended before its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The output reached the byte cap.
    Capped,
    /// The client did not keep up.
    Slow,
    /// The client went away.
    Gone,
    /// The recorder wrote something that is not a trace (a bug).
    Malformed(String),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Capped => write!(f, "the capture reached its byte cap"),
            Ended::Slow => write!(
                f,
                "the client read the capture too slowly ({QUEUE_BATCHES} batches were waiting); the capture was stopped"
            ),
            Ended::Gone => write!(f, "the client went away"),
            Ended::Malformed(why) => write!(f, "the capture's output is malformed: {why}"),
        }
    }
}

/// Lets a trace's units ([`framing::Framer`]: the file header, then whole batches) through
/// while they fit under the cap, then closes the trace with an end marker.
#[derive(Debug)]
pub(crate) struct Framer {
    units: framing::Framer,
    /// Event and table batches let through (what the end marker counts).
    batches: u64,
    sent: u64,
    cap: u64,
    capped: bool,
}

impl Framer {
    pub(crate) fn new(cap: u64) -> Framer {
        Framer {
            units: framing::Framer::new(),
            batches: 0,
            sent: 0,
            cap,
            capped: false,
        }
    }

    /// Bytes let through so far.
    #[cfg(test)]
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Feeds bytes; `emit` gets each whole unit. Fails with [`Ended::Capped`] once the cap
    /// is reached (after emitting an end marker), or with `emit`'s error.
    pub(crate) fn feed(
        &mut self,
        mut buf: &[u8],
        emit: &mut dyn FnMut(Bytes) -> Result<(), Ended>,
    ) -> Result<(), Ended> {
        while !buf.is_empty() {
            if self.capped {
                return Err(Ended::Capped);
            }
            let unit = match self.units.next_unit(&mut buf) {
                Ok(Some(unit)) => unit,
                Ok(None) => break,
                Err(e) => return Err(Ended::Malformed(e.to_string())),
            };
            let is_batch = matches!(unit, Unit::Batch(_));
            let unit = match unit {
                Unit::End(end) => {
                    self.sent += end.len() as u64;
                    emit(end)?;
                    continue;
                }
                Unit::Header(b) | Unit::Batch(b) => b,
            };
            if self.sent + (unit.len() + END_MARKER_MAX_LEN) as u64 > self.cap {
                self.capped = true;
                let end = framing::end_marker(self.batches);
                self.sent += end.len() as u64;
                emit(end)?;
                return Err(Ended::Capped);
            }
            self.batches += u64::from(is_batch);
            self.sent += unit.len() as u64;
            emit(unit)?;
        }
        Ok(())
    }
}

/// What the capture's writer, its body and its controller share.
#[derive(Debug, Default)]
pub(crate) struct CaptureRun {
    /// Signalled when the capture should stop before its time.
    stop: Notify,
    ended: Mutex<Option<Ended>>,
    pub(crate) status: Arc<StreamStatus>,
    pub(crate) bytes: AtomicU64,
}

impl CaptureRun {
    /// Records why the capture ends early (the first reason wins) and wakes the controller.
    pub(crate) fn end(&self, why: Ended) {
        {
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            if ended.is_some() {
                return;
            }
            match &why {
                Ended::Slow | Ended::Malformed(_) => self.status.fail(why.to_string()),
                Ended::Capped | Ended::Gone => {}
            }
            *ended = Some(why);
        }
        self.stop.notify_one();
    }

    /// Why the capture ended early, if it did.
    pub(crate) fn ended(&self) -> Option<Ended> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The writer the recorder's capture thread streams the capture into. Never blocks.
pub(crate) struct CaptureWriter {
    framer: Framer,
    tx: mpsc::Sender<Bytes>,
    run: Arc<CaptureRun>,
}

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (tx, run) = (&self.tx, &self.run);
        let fed = self.framer.feed(buf, &mut |unit| {
            let n = unit.len() as u64;
            match tx.try_send(unit) {
                Ok(()) => {
                    run.bytes.fetch_add(n, Ordering::Relaxed);
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Full(_)) => Err(Ended::Slow),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(Ended::Gone),
            }
        });
        match fed {
            Ok(()) => Ok(buf.len()),
            Err(why) => {
                let e = io::Error::other(why.to_string());
                run.end(why);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The process-wide capture slot: one capture at a time, then the cooldown.
struct SlotState {
    /// When the running capture (started here) is due to end.
    running_until: Option<Instant>,
    /// When the next capture may start.
    next_at: Option<Instant>,
}

static SLOT: Mutex<SlotState> = Mutex::new(SlotState {
    running_until: None,
    next_at: None,
});

fn slot() -> std::sync::MutexGuard<'static, SlotState> {
    SLOT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Why the slot could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// A capture runs.
    Running,
    /// The cooldown after the last one.
    Cooldown,
}

/// The capture slot, held while a capture runs; released (starting the cooldown) on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    cooldown: Duration,
    cool: bool,
}

impl Slot {
    /// Takes the slot for a capture of `length`, or says when to retry.
    pub(crate) fn take(length: Duration, cooldown: Duration) -> Result<Slot, (Busy, Refusal)> {
        let now = Instant::now();
        let mut s = slot();
        if let Some(until) = s.running_until {
            let secs = ceil_secs(until.saturating_duration_since(now) + cooldown);
            return Err((
                Busy::Running,
                Refusal::busy(
                    secs,
                    format!(
                        "a capture is running (one at a time per process); retry in {} s",
                        secs.max(1)
                    ),
                ),
            ));
        }
        if let Some(next) = s.next_at.filter(|t| *t > now) {
            let secs = ceil_secs(next - now);
            return Err((
                Busy::Cooldown,
                Refusal::busy(
                    secs,
                    format!(
                        "captures are throttled: the cooldown after the last one ends in {} s",
                        secs.max(1)
                    ),
                ),
            ));
        }
        s.running_until = Some(now + length);
        Ok(Slot {
            cooldown,
            cool: true,
        })
    }

    /// Gives the slot back without a cooldown (the capture never started).
    pub(crate) fn give_back(mut self) {
        self.cool = false;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = slot();
        s.running_until = None;
        if self.cool {
            s.next_at = Some(Instant::now() + self.cooldown);
        }
    }
}

/// A capture that has started: the body's side.
pub(crate) struct Started {
    pub(crate) rx: mpsc::Receiver<Bytes>,
    pub(crate) status: Arc<StreamStatus>,
    /// Put into the body: its drop (client done or gone) stops the capture.
    pub(crate) on_drop: OnDrop,
}

/// Starts a capture of `length` capped at `max_bytes`, holding `slot` until it is
/// stopped (by the time, the cap, a slow client or the body's drop); `done` runs after.
pub(crate) fn start(
    slot: Slot,
    length: Duration,
    max_bytes: u64,
    done: impl FnOnce(&CaptureRun) + Send + 'static,
) -> Result<Started, Refusal> {
    let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
    let run = Arc::new(CaptureRun::default());
    let writer = CaptureWriter {
        framer: Framer::new(max_bytes),
        tx,
        run: run.clone(),
    };
    let guard = match fdr_recorder::capture(writer) {
        Ok(g) => g,
        Err(e) => {
            slot.give_back();
            return Err(match e {
                fdr_recorder::Error::CaptureInProgress => Refusal::busy(
                    RETRY_FOREIGN_SECS,
                    "a capture started outside this endpoint is running (one at a time per process)",
                ),
                fdr_recorder::Error::NotStarted => Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the recorder is not started: the service must call fdr::start first",
                ),
                e => Refusal::internal(format!("could not start the capture: {e}")),
            });
        }
    };
    let control = run.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(length) => {}
            () = control.stop.notified() => {}
        }
        let counted = control.clone();
        // Counted and the slot given back right as the recorder's capture ends, before
        // the response ends: a client that has read its whole capture finds the counters
        // final and the endpoint free.
        let stopped = tokio::task::spawn_blocking(move || {
            let stopped = guard.stop();
            done(&counted);
            drop(slot);
            stopped
        })
        .await;
        let writer = match stopped {
            Ok(Ok(writer)) => Some(writer),
            // Our own writer stopped it (cap, slow or gone client): already accounted for.
            Ok(Err(fdr_recorder::Error::Io { .. })) if control.ended().is_some() => None,
            Ok(Err(e)) => {
                control.status.fail(format!("the capture failed: {e}"));
                None
            }
            Err(_) => {
                control.status.fail("stopping the capture panicked");
                None
            }
        };
        // Dropping the writer closes the body's channel: the response ends.
        drop(writer);
    });
    let gone = run.clone();
    Ok(Started {
        rx,
        status: run.status.clone(),
        on_drop: OnDrop::new(move || gone.end(Ended::Gone)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdr_format::wire::{FILE_HEADER_CHECKSUM_LEN, FILE_HEADER_FIXED_LEN};
    use fdr_format::{Batch, Decoder, ProcessInfo, TableEncoder, ThreadId, TraceWriter};

    /// A trace with `n` event batches of `payload` bytes each.
    fn trace(n: usize, payload: usize) -> Vec<u8> {
        let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
        w.write_table(&TableEncoder::new(), true).unwrap();
        // Batch payloads are opaque to the framing (events decode lazily).
        for i in 0..n {
            w.write_events(ThreadId(1), i as u32, 0, &vec![0u8; payload])
                .unwrap();
        }
        w.finish().unwrap()
    }

    fn feed_all(framer: &mut Framer, data: &[u8], step: usize) -> (Vec<u8>, Result<(), Ended>) {
        let mut out = Vec::new();
        let mut result = Ok(());
        for piece in data.chunks(step) {
            result = framer.feed(piece, &mut |u| {
                out.extend_from_slice(&u);
                Ok(())
            });
            if result.is_err() {
                break;
            }
        }
        (out, result)
    }

    #[test]
    fn framer_passes_a_trace_through_whole_at_any_write_size() {
        let t = trace(5, 100);
        for step in [1, 3, 28, 29, 1000, t.len()] {
            let mut f = Framer::new(u64::MAX);
            let (out, r) = feed_all(&mut f, &t, step);
            assert_eq!(r, Ok(()));
            assert_eq!(out, t, "write size {step}");
        }
    }

    #[test]
    fn framer_cuts_at_the_cap_between_batches_and_closes_the_trace() {
        let t = trace(50, 1000);
        let cap = 10_000;
        let mut f = Framer::new(cap);
        let (out, r) = feed_all(&mut f, &t, 7);
        assert_eq!(r, Err(Ended::Capped));
        assert!(out.len() as u64 <= cap, "{} > {cap}", out.len());
        assert!(
            out.len() as u64 > cap - 1100,
            "cut too early: {}",
            out.len()
        );
        assert_eq!(f.sent(), out.len() as u64);
        let mut d = Decoder::new(&out).unwrap();
        let mut events = 0;
        while let Some(b) = d.next_batch() {
            if let Batch::Events(_) = b.expect("every batch whole, the end marker right") {
                events += 1;
            }
        }
        assert!(events >= 8, "{events} event batches");
        // After the cap, nothing more gets through.
        assert!(f.feed(&t[..10], &mut |_| Ok(())).is_err());
    }

    #[test]
    fn framer_refuses_what_is_not_a_trace() {
        let mut bad = trace(1, 10);
        // Break the tag of the first batch after the file header.
        let header_len = FILE_HEADER_FIXED_LEN
            + u32::from_le_bytes(bad[12..16].try_into().unwrap()) as usize
            + FILE_HEADER_CHECKSUM_LEN;
        bad[header_len] = 0x42;
        let mut f = Framer::new(u64::MAX);
        let (_, r) = feed_all(&mut f, &bad, 64);
        assert!(
            matches!(r, Err(Ended::Malformed(ref m)) if m.contains("0x42")),
            "{r:?}"
        );
    }
}
