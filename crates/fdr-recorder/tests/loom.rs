//! Loom models of the recorder's concurrency protocol (built only with `--cfg loom`):
//! the chunk hand-off, the committed-length publication, and snapshot versus recycle.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p fdr-recorder --release --test loom`
//! (`cargo xtask ci` runs it with a bounded preemption count).
#![cfg(loom)]
#![allow(unsafe_code, reason = "the models drive the owner-only write directly")]

use loom::sync::Arc;
use loom::thread;

use fdr_recorder::chunk::{CHUNK_BYTES, Chunk, ChunkPtr, Queue, Slot, seal_and_install};

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
        a.get().reset_for_test();
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

/// Hand-off: the writer seals a full chunk into the queue and takes a new one; the
/// collector pops it, reads all of it, and returns it to the pool for the writer to reuse.
#[test]
fn chunk_handoff() {
    loom::model(|| {
        let sealed = Arc::new(Queue::<ChunkPtr>::new(4));
        let pool = Arc::new(Queue::<ChunkPtr>::new(4));
        let slot = Arc::new(Slot::new());
        let (a, b) = (chunk(), chunk());
        a.get().reset_for_test();
        slot.install(Some(a));
        pool.push(b).unwrap();
        let (sq, pq) = (sealed.clone(), pool.clone());
        let collector = thread::spawn(move || {
            for _ in 0..2 {
                if let Some(c) = sq.pop() {
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
        next.get().reset_for_test();
        seal_and_install(&slot, &sealed, a, Some(next)).unwrap();
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
        let slot = Arc::new(Slot::new());
        let a = chunk();
        a.get().reset_for_test();
        slot.install(Some(a));
        append(a.get(), 0, &[5, 5]);
        let s2 = slot.clone();
        let snapshot = thread::spawn(move || {
            if let Some(c) = s2.pin_current() {
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
        seal_and_install(&slot, &sealed, a, None).unwrap();
        // Collector: pops it and recycles it only if reclaimable; the writer then reuses it.
        let c = sealed.pop().unwrap();
        if c.get().reclaimable() {
            c.get().reset_for_test();
            slot.install(Some(c));
            // Rewriting from 0 must not race with a reader: loom reports it if it does.
            append(c.get(), 0, &[8; CHUNK_BYTES / 4]);
        }
        snapshot.join().unwrap();
    });
}
