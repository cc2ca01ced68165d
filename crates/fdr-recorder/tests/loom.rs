//! Loom models of the recorder's concurrency protocol (built only with `--cfg loom`):
//! the chunk hand-off (a thread's mailbox, and the overflow queue past it), the
//! committed-length publication, snapshot versus recycle, and a snapshot's drain and pin
//! racing a thread's seals while the drained chunks are recycled.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p fdr-recorder --release --test loom`
//! (`cargo xtask ci` runs it with a bounded preemption count).
#![cfg(loom)]
#![allow(unsafe_code, reason = "the models drive the owner-only write directly")]

use loom::sync::Arc;
use loom::thread;

use fdr_recorder::chunk::{
    CHUNK_BYTES, Chunk, ChunkPtr, Handoff, MAILBOX_SLOTS, Queue, Slot, collect_sealed,
};

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
