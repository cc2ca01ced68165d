//! Loom models of the recorder's concurrency protocol (built only with `--cfg loom`):
//! the chunk hand-off (a thread's mailbox, and the overflow queue past it), the
//! committed-length publication, snapshot versus recycle, a snapshot's drain and pin
//! racing a thread's seals while the drained chunks are recycled, a reader's lease versus
//! the collector taking its pin back, a metrics read racing the polls that fold a
//! thread's pending poll samples, the scope depth the OS sampler reads from a thread's
//! committed word across a seal, and the capture area handed between the stack-capture
//! signal handler and the sampler.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p fdr-recorder --release --test loom`
//! (`cargo xtask ci` runs it with a bounded preemption count).
#![cfg(loom)]
#![allow(unsafe_code, reason = "the models drive the owner-only write directly")]

use loom::sync::Arc;
use loom::thread;

use fdr_recorder::chunk::{
    CHUNK_BYTES, Chunk, ChunkPtr, Handoff, Lease, MAILBOX_SLOTS, Queue, Revoked, Slot,
    collect_sealed, committed_depth, committed_events, word_step,
};
use fdr_recorder::metric_cells::{COUNTERS, HISTOGRAMS, Hist, HistogramTicks, ThreadMetrics};
use fdr_recorder::os_signal::{Area, OUTCOME_COPIED, OUTCOME_REQUESTED, REQUESTED};

fn chunk() -> ChunkPtr {
    ChunkPtr::alloc()
}

/// Writes `bytes` as the owner and publishes them (as one event per byte written so far).
fn append(c: &Chunk, at: usize, bytes: &[u8]) -> usize {
    // SAFETY: the model's writer owns `c` and writes past its committed length.
    unsafe { c.write_bytes(at, bytes) };
    let len = at + bytes.len();
    c.commit(len, len as u64);
    len
}

/// Committed-length publication: a reader that pins the live chunk sees a prefix made of
/// whole events, never a torn one.
#[test]
fn committed_length_publication() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let a = chunk();
        a.get().reset_for_test_at(0);
        slot.install(Some(a));
        let s2 = slot.clone();
        let reader = thread::spawn(move || {
            if let Some(c) = s2.pin_current() {
                let mut out = Vec::new();
                c.get().copy_committed(&mut out);
                // Length and event count travel in one word: never one without the other.
                let (len, events) = c.get().committed_with_events();
                assert_eq!(len as u64, events);
                c.get().unpin();
                assert!(
                    out.is_empty() || out == [1, 1] || out == [1, 1, 2, 2],
                    "torn read: {out:?}"
                );
            }
        });
        let at = append(a.get(), 0, &[1, 1]);
        append(a.get(), at, &[2, 2]);
        reader.join().unwrap();
    });
}

/// Hand-off: the writer seals a full chunk into its mailbox and takes a new one; the
/// collector drains it, reads all of it, and returns it to the pool for the writer to reuse.
#[test]
fn chunk_handoff() {
    loom::model(|| {
        let sealed = Arc::new(Queue::<ChunkPtr>::new(4));
        let pool = Arc::new(Queue::<ChunkPtr>::new(4));
        let h = Arc::new(Handoff::new());
        let (a, b) = (chunk(), chunk());
        a.get().reset_for_test_at(0);
        h.slot().install(Some(a));
        pool.push(b).unwrap();
        let (sq, pq, h2) = (sealed.clone(), pool.clone(), h.clone());
        let collector = thread::spawn(move || {
            let (mut taken, mut got) = (0, Vec::new());
            for _ in 0..2 {
                collect_sealed([(&*h2, &mut taken)], &sq, &mut got);
                if let Some(&c) = got.first() {
                    let mut out = Vec::new();
                    c.get().copy_committed(&mut out);
                    assert_eq!(out, [7; 4]);
                    if c.get().reclaimable() {
                        pq.push(c).unwrap();
                    }
                    return;
                }
                thread::yield_now();
            }
        });
        append(a.get(), 0, &[7; 4]);
        let next = pool.pop().expect("a free chunk");
        next.get().reset_for_test_at(0);
        h.seal(&mut 0, &sealed, a, Some(next)).unwrap();
        append(next.get(), 0, &[9]);
        collector.join().unwrap();
    });
}

/// Snapshot versus recycle: a snapshot pins the writer's live chunk while the writer seals
/// it and the collector tries to recycle it; a pinned chunk is never handed back to the
/// writer, so the snapshot's bytes are exactly what was committed before.
#[test]
fn snapshot_versus_recycle() {
    loom::model(|| {
        let sealed = Arc::new(Queue::<ChunkPtr>::new(4));
        let h = Arc::new(Handoff::new());
        let a = chunk();
        a.get().reset_for_test_at(0);
        h.slot().install(Some(a));
        append(a.get(), 0, &[5, 5]);
        let h2 = h.clone();
        let snapshot = thread::spawn(move || {
            if let Some(c) = h2.slot().pin_current() {
                let mut out = Vec::new();
                c.get().copy_committed(&mut out);
                // The sealed chunk's bytes, or (if it was recycled before the pin) the new
                // incarnation's committed prefix: never a mix.
                let ok = [&[5, 5][..], &[5, 5, 6], &[], &[8; CHUNK_BYTES / 4]];
                assert!(ok.contains(&&out[..]), "{out:?}");
                c.get().unpin();
            }
        });
        // Writer: one more event, then seal (no next chunk).
        append(a.get(), 2, &[6]);
        h.seal(&mut 0, &sealed, a, None).unwrap();
        // Collector: drains it and recycles it only if reclaimable; the writer then reuses it.
        let mut got = Vec::new();
        collect_sealed([(&*h, &mut 0)], &sealed, &mut got);
        assert_eq!(got, [a]);
        let c = got[0];
        if c.get().reclaimable() {
            c.get().reset_for_test_at(0);
            h.slot().install(Some(c));
            // Rewriting from 0 must not race with a reader: loom reports it if it does.
            append(c.get(), 0, &[8; CHUNK_BYTES / 4]);
        }
        snapshot.join().unwrap();
    });
}

/// A snapshot's drain, live pin and second drain (under the core lock, as in `write_to`)
/// race a thread that seals twice: the first seal goes to its mailbox, the second to the
/// mailbox or, if the drain has not emptied it yet, the overflow queue. The snapshot then
/// reads what it drained and recycles it if nobody reads it, and the writer takes its third
/// chunk from the pool, so it may rewrite a recycled chunk while the snapshot still holds a
/// pointer to it. Checked: every chunk sealed before the live chunk the snapshot pinned is
/// among the drained ones (none lost), no chunk is drained twice (here or by the final
/// drain), the drains keep each thread's order, and no read races a rewrite (loom reports
/// it).
#[test]
fn mailbox_handoff_versus_snapshot_and_recycle() {
    assert_eq!(
        MAILBOX_SLOTS, 1,
        "the model reaches the overflow queue in two seals"
    );
    loom::model(|| {
        let sealed = Arc::new(Queue::<ChunkPtr>::new(4));
        let pool = Arc::new(Queue::<ChunkPtr>::new(4));
        let h = Arc::new(Handoff::new());
        let (a, b, c) = (chunk(), chunk(), chunk());
        a.get().reset_for_test_at(1);
        h.slot().install(Some(a));
        let (sq, pq, h2) = (sealed.clone(), pool.clone(), h.clone());
        // The snapshot, also the only drainer while it runs (it holds the core lock).
        let snapshot = thread::spawn(move || {
            let mut taken = 0;
            let (mut first, mut second) = (Vec::new(), Vec::new());
            collect_sealed([(&*h2, &mut taken)], &sq, &mut first);
            let live = h2.slot().pin_current();
            collect_sealed([(&*h2, &mut taken)], &sq, &mut second);
            let mut found = first;
            found.extend(second);
            // The writer's order is a, b, then its third chunk; a drain keeps it.
            let order = |x: ChunkPtr| [a, b].iter().position(|&y| y == x);
            let ranks: Vec<_> = found.iter().map(|&x| order(x).expect("sealed")).collect();
            assert!(
                ranks.windows(2).all(|w| w[0] < w[1]),
                "order or duplicate: {ranks:?}"
            );
            match live {
                // Everything sealed before the pinned chunk was found.
                Some(l) if l == b => assert!(found.contains(&a)),
                Some(l) if l != a => assert_eq!(found, [a, b]),
                Some(_) => {}
                // The confirmation failed: the slot moved past the chunk it loaded, so
                // that chunk was sealed before, and the second drain found it.
                None => assert!(!found.is_empty()),
            }
            if let Some(l) = live {
                let mut out = Vec::new();
                l.get().copy_committed(&mut out);
                let ok = [&[][..], &[1], &[2], &[3]];
                assert!(ok.contains(&&out[..]), "live {out:?}");
                l.get().unpin();
            }
            for &x in &found {
                let mut out = Vec::new();
                x.get().copy_committed(&mut out);
                assert_eq!(out, if x == a { [1] } else { [2] });
                // Out of the ring at once, recycled only if nobody reads it.
                if x.get().reclaimable() {
                    pq.push(x).unwrap();
                }
            }
            (found, taken)
        });
        // The writer.
        let mut posted = 0;
        append(a.get(), 0, &[1]);
        b.get().reset_for_test_at(2);
        h.seal(&mut posted, &sealed, a, Some(b)).unwrap();
        append(b.get(), 0, &[2]);
        let third = pool.pop().unwrap_or(c);
        third.get().reset_for_test_at(3);
        h.seal(&mut posted, &sealed, b, Some(third)).unwrap();
        // Rewriting a recycled chunk from 0 must not race with a reader.
        append(third.get(), 0, &[3]);
        let (mut found, mut taken) = snapshot.join().unwrap();
        // The final drain finds the rest: each sealed chunk drained exactly once.
        let mut rest = Vec::new();
        collect_sealed([(&*h, &mut taken)], &sealed, &mut rest);
        found.extend(rest);
        found.sort_by_key(|&x| x != a);
        assert_eq!(found, [a, b]);
    });
}

/// A reader's lease versus the collector taking its pin back. The reader (a snapshot or a
/// capture) holds a pin on a sealed chunk, made while the chunk was in the ring, and hands
/// it to its lease, then reads the chunk through the lease; meanwhile the collector, short
/// of free chunks, takes the lease's pin back and hands the chunk to a writer if nobody
/// pins it any more, and the writer rewrites it from 0. Checked: the reader gets the
/// chunk's bytes whole or the collector's note of what it held, exactly one of the two, and
/// never reads while the chunk is rewritten (loom reports the race if it does).
#[test]
fn lease_read_versus_revoke_and_recycle() {
    loom::model(|| {
        let a = chunk();
        a.get().reset_for_test_at(1);
        append(a.get(), 0, &[5, 5]);
        a.get().clear_current();
        // Pinned while in the ring (under the core lock, before the collector looks).
        a.get().pin();
        let inc = a.incarnation();
        let lease = Arc::new(Lease::new());
        let l2 = lease.clone();
        let reader = thread::spawn(move || {
            assert!(l2.adopt(inc));
            l2.read(inc).map(|reading| {
                let mut out = Vec::new();
                let len = reading.copy_committed(&mut out);
                assert_eq!(out, [5, 5], "a torn or foreign read");
                len
            })
        });
        // The collector, then the writer it hands the chunk to.
        let what = Revoked {
            events: 2,
            bytes: 2,
            discards: 0,
            last: false,
        };
        let revoked = lease.revoke(inc, what);
        if a.get().reclaimable() {
            a.get().reset_for_test_at(2);
            append(a.get(), 0, &[8; CHUNK_BYTES / 4]);
        }
        match reader.join().unwrap() {
            Ok(len) => {
                assert_eq!(len, 2);
                assert!(!revoked, "read and taken back");
            }
            Err(note) => {
                assert!(revoked, "neither read nor taken back");
                assert_eq!(note, what);
            }
        }
        assert_eq!(lease.held(), 0);
    });
}

/// Reads a thread's poll-duration histogram as `metrics()` does.
fn read_poll_durations(cells: &ThreadMetrics) -> HistogramTicks {
    let mut hists: Vec<HistogramTicks> = (0..HISTOGRAMS).map(|_| HistogramTicks::new()).collect();
    let mut counters = [0; COUNTERS];
    cells.add_to(&mut hists, &mut counters);
    hists.swap_remove(Hist::PollDuration as usize)
}

/// A poll's samples wait as pending until the next poll folds them in: a read racing the
/// polls never counts a sample twice (once folded and once pending), and after the polls
/// it counts each exactly once. (Values below 8 have a bucket each.)
#[test]
fn pending_poll_samples_versus_a_read() {
    let mut model = loom::model::Builder::new();
    // Reading a thread's cells is some 1,500 atomic loads, each a scheduling point.
    model.max_branches = 100_000;
    model.check(|| {
        // A thread's cells are some 1,500 atomics: build and read them on a thread with room.
        let reader = thread::Builder::new().stack_size(32 << 20);
        let reader = reader.spawn(|| {
            let cells = Arc::new(ThreadMetrics::new());
            let c2 = cells.clone();
            let poller = thread::spawn(move || {
                for duration in 1..=3 {
                    c2.poll(None, duration);
                }
            });
            let during = read_poll_durations(&cells);
            for d in 1..=3 {
                assert!(during.buckets[d] <= 1, "sample {d} counted twice");
            }
            assert!(during.count <= 3);
            poller.join().unwrap();
            let after = read_poll_durations(&cells);
            assert_eq!(after.buckets[1..=3], [1, 1, 1]);
            assert_eq!(after.count, 3);
        });
        reader.unwrap().join().unwrap();
    });
}

/// Scope depth across a seal: the OS sampler reads a thread's slot, that chunk's committed
/// word, and the slot again, while the thread, inside a scope, fills its chunk, seals it
/// and records in the next one. Every reading names depth 1 until the scope's end is
/// published: a new chunk's word starts at its thread's depth (`set_initial_depth`), so the
/// sampler never sees a thread inside a scope as outside one.
#[test]
fn scope_depth_across_a_seal() {
    loom::model(|| {
        let h = Arc::new(Handoff::new());
        let sealed = Arc::new(Queue::<ChunkPtr>::new(4));
        let (a, b) = (chunk(), chunk());
        a.get().reset_for_test_at(0);
        h.slot().install(Some(a));
        // The scope's begin: one event, depth 1.
        let begin = 2 + word_step(1, 1);
        a.get().commit_word(begin);
        let h2 = h.clone();
        let sampler = thread::spawn(move || {
            for _ in 0..2 {
                let slot = h2.slot();
                let Some(c) = slot.peek() else { continue };
                let word = c.get().committed_word();
                if slot.peek() != Some(c) {
                    continue;
                }
                let ended = c == b && committed_events(word) == 2;
                assert_eq!(
                    committed_depth(word),
                    if ended { 0 } else { 1 },
                    "reading {word:#x} of chunk {}",
                    if c == a { "a" } else { "b" }
                );
            }
        });
        // The chunk is full: seal it, go on in `b` at the same depth.
        b.get().reset_for_test_at(1);
        b.get().set_initial_depth(begin);
        h.seal(&mut 0, &sealed, a, Some(b)).unwrap();
        let inner = (begin & !0xFFFF_FFFF_FFFF) + 2 + word_step(1, 0);
        b.get().commit_word(inner);
        // The scope's end.
        b.get()
            .commit_word(inner.wrapping_add(2).wrapping_add(word_step(1, -1)));
        sampler.join().unwrap();
    });
}

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
        let read = |a: &Area| a.take(|c| (c.regs[0], c.stack.to_vec(), c.requested));
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
