//! Loom models of the chunk protocol, driven through the [`ChunkWriter`] the recorder's
//! threads write with: the committed-word publication, the hand-off (a thread's mailbox, and
//! the overflow queue past it), snapshot versus recycle, a snapshot's drain and pin racing a
//! thread's seals while the drained chunks are recycled, a reader's lease versus the
//! collector taking its pin back, and the scope depth the OS sampler reads across a seal.
//!
//! A writer here does what `local.rs` does, in the same order: `begin_chunk` on a chunk it
//! took from the pool (or was given), `Handoff::seal` of the old one, then events through
//! `room().write(..)`. Under loom a chunk is [`CHUNK_BYTES`] (16) bytes, each a tracked cell,
//! so a read that races a write is reported.

use loom::sync::Arc;
use loom::thread;

use crate::chunk::{
    CHUNK_BYTES, ChunkMeta, ChunkPtr, ChunkWriter, Handoff, Lease, MAILBOX_SLOTS, Queue, Revoked,
    Slot, WRITE_RESERVE, collect_sealed, committed_depth, committed_events, word_step,
};

fn chunk() -> ChunkPtr {
    ChunkPtr::alloc()
}

/// The facts of a thread's chunk number `seq`, based at timestamp `seq` (a drain sorts by it).
fn meta_at(seq: u32) -> ChunkMeta {
    ChunkMeta {
        seq,
        base_ts: u64::from(seq),
        ..ChunkMeta::default()
    }
}

/// Writes one event made of `bytes` and publishes it with `step` (events, depth change).
fn append_step(w: &mut ChunkWriter, bytes: &[u8], step: u64) {
    let room = w.room().expect("room for the event");
    room.write(
        |out: &mut [u8; WRITE_RESERVE]| {
            out[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        },
        step,
    );
}

/// Writes one event made of `bytes` (no scope depth change).
fn append(w: &mut ChunkWriter, bytes: &[u8]) {
    append_step(w, bytes, word_step(1, 0));
}

/// Committed-word publication, through the hot path's own calls (`fast_room`, then
/// `write_pair` for a region's two bytes and `write_triple` for three): a reader that pins
/// the live chunk sees a prefix made of whole events, never a torn one (nor the spare
/// fourth byte `write_triple` stores), and the event count of the same word.
#[test]
fn committed_word_publication() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let a = chunk();
        let mut w = ChunkWriter::new();
        w.begin_chunk(a, meta_at(0));
        // Fast writes on, as `Local` sets them while the counter is the clock.
        w.set_limit(0, true);
        slot.install(Some(a));
        let s2 = slot.clone();
        let reader = thread::spawn(move || {
            if let Some(c) = s2.pin_current() {
                let mut out = Vec::new();
                c.get().copy_committed(&mut out);
                // Length and event count travel in one word: never one without the other.
                let (len, events) = c.get().committed_with_events();
                assert!(
                    [(0, 0), (2, 1), (5, 2)].contains(&(len, events)),
                    "length {len} with {events} events"
                );
                c.get().unpin();
                assert!(
                    out.is_empty() || out == [1, 1] || out == [1, 1, 2, 3, 4],
                    "torn read: {out:?}"
                );
            }
        });
        let room = w.fast_room().expect("fast room in an empty chunk");
        room.write_pair([1, 1], word_step(1, 0));
        let room = w.fast_room().expect("fast room after two bytes");
        room.write_triple(u32::from_le_bytes([2, 3, 4, 5]), word_step(1, 0));
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
        let mut w = ChunkWriter::new();
        w.begin_chunk(a, meta_at(0));
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
        append(&mut w, &[7; 4]);
        let next = pool.pop().expect("a free chunk");
        w.begin_chunk(next, meta_at(1));
        h.seal(&mut 0, &sealed, a, Some(next)).unwrap();
        append(&mut w, &[9]);
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
        let mut w = ChunkWriter::new();
        w.begin_chunk(a, meta_at(0));
        h.slot().install(Some(a));
        append(&mut w, &[5, 5]);
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
        // Writer: one more event, then seal (no next chunk: it discards meanwhile).
        append(&mut w, &[6]);
        w.begin_discard();
        h.seal(&mut 0, &sealed, a, None).unwrap();
        // Collector: drains it and recycles it only if reclaimable; the writer then reuses it.
        let mut got = Vec::new();
        collect_sealed([(&*h, &mut 0)], &sealed, &mut got);
        assert_eq!(got, [a]);
        let c = got[0];
        if c.get().reclaimable() {
            w.begin_chunk(c, meta_at(1));
            h.slot().install(Some(c));
            // Rewriting from 0 must not race with a reader: loom reports it if it does.
            append(&mut w, &[8; CHUNK_BYTES / 4]);
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
        let mut w = ChunkWriter::new();
        w.begin_chunk(a, meta_at(1));
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
        append(&mut w, &[1]);
        w.begin_chunk(b, meta_at(2));
        h.seal(&mut posted, &sealed, a, Some(b)).unwrap();
        append(&mut w, &[2]);
        let third = pool.pop().unwrap_or(c);
        w.begin_chunk(third, meta_at(3));
        h.seal(&mut posted, &sealed, b, Some(third)).unwrap();
        // Rewriting a recycled chunk from 0 must not race with a reader.
        append(&mut w, &[3]);
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
        let mut w = ChunkWriter::new();
        w.begin_chunk(a, meta_at(1));
        append(&mut w, &[5, 5]);
        // Sealed (its writer moved on) and collected into the ring.
        w.begin_discard();
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
            let mut next_owner = ChunkWriter::new();
            next_owner.begin_chunk(a, meta_at(2));
            append(&mut next_owner, &[8; CHUNK_BYTES / 4]);
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

/// Scope depth across a seal: the OS sampler reads a thread's slot, that chunk's committed
/// word, and the slot again, while the thread, inside a scope, fills its chunk, seals it
/// and records in the next one. Every reading names depth 1 until the scope's end is
/// published: a new chunk's word starts at its thread's depth (`begin_chunk`), so the
/// sampler never sees a thread inside a scope as outside one.
#[test]
fn scope_depth_across_a_seal() {
    loom::model(|| {
        let h = Arc::new(Handoff::new());
        let sealed = Arc::new(Queue::<ChunkPtr>::new(4));
        let (a, b) = (chunk(), chunk());
        let mut w = ChunkWriter::new();
        w.begin_chunk(a, meta_at(0));
        h.slot().install(Some(a));
        // The scope's begin: one event, depth 1.
        append_step(&mut w, &[1, 1], word_step(1, 1));
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
        // The chunk is full: go on in `b` at the same depth, seal `a`.
        w.begin_chunk(b, meta_at(1));
        h.seal(&mut 0, &sealed, a, Some(b)).unwrap();
        append(&mut w, &[2, 2]);
        // The scope's end.
        append_step(&mut w, &[3, 3], word_step(1, -1));
        sampler.join().unwrap();
    });
}
