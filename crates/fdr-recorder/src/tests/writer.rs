//! The chunk writer's bounds: every byte it writes lands inside its buffer, at or past the
//! committed length, and is what a reader of the committed prefix gets, whatever the events'
//! sizes and whatever length an encoder claims.

use crate::chunk::{
    CHUNK_BYTES, COMMITTED_DEPTH, ChunkMeta, ChunkPtr, ChunkWriter, SCRATCH_BYTES, WRITE_RESERVE,
    committed_depth, committed_events, committed_len, word_step,
};

/// Deterministic event sizes from 1 to `WRITE_RESERVE` bytes.
fn sizes() -> impl Iterator<Item = usize> {
    let mut x = 0x9e37_79b9_u32;
    std::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        Some(1 + x as usize % WRITE_RESERVE)
    })
}

#[test]
fn fixed_events_fill_a_chunk_up_to_its_limit_and_read_back_whole() {
    let c = ChunkPtr::alloc();
    let mut w = ChunkWriter::new();
    w.begin_chunk(c, ChunkMeta::default());
    w.set_limit(0, true);
    let mut want = Vec::new();
    let mut events = 0u64;
    for (i, len) in sizes().enumerate() {
        let Some(room) = w.room() else { break };
        let byte = i as u8;
        room.write(
            |out: &mut [u8; WRITE_RESERVE]| {
                out[..len].fill(byte);
                len
            },
            word_step(1, 0),
        );
        want.extend(std::iter::repeat_n(byte, len));
        events += 1;
    }
    // It stopped at the limit, with the reserve still free: the last event started at or
    // below `CHUNK_BYTES - WRITE_RESERVE` and so ended inside the chunk.
    assert!(
        w.pos() > CHUNK_BYTES - WRITE_RESERVE,
        "stopped early at {}",
        w.pos()
    );
    assert!(w.pos() <= CHUNK_BYTES, "wrote past the chunk: {}", w.pos());
    assert!(w.fast_room().is_none());
    let mut got = Vec::new();
    assert_eq!(c.get().copy_committed(&mut got), want.len());
    assert_eq!(got, want);
    assert_eq!(c.get().committed_with_events(), (want.len(), events));
}

#[test]
fn fast_room_follows_the_limit_and_the_clock() {
    let c = ChunkPtr::alloc();
    let mut w = ChunkWriter::new();
    w.begin_chunk(c, ChunkMeta::default());
    w.set_limit(0, false);
    assert!(
        w.fast_room().is_none(),
        "no fast writes off the counter clock"
    );
    assert!(w.room().is_some());
    // A limit 8 bytes in: room at 0, 2, 4, 6 and 8, none past it.
    w.set_limit(CHUNK_BYTES - WRITE_RESERVE - 8, true);
    for _ in 0..5 {
        let room = w.fast_room().expect("within the limit");
        room.write_pair([1, 2], word_step(1, 0));
    }
    assert_eq!(w.pos(), 10);
    assert!(w.fast_room().is_none() && w.room().is_none());
    // A limit past the buffer is clamped to the reserve.
    w.set_limit(usize::MAX, true);
    assert!(w.room().is_none());
}

#[test]
fn a_length_past_the_room_is_never_published() {
    let c = ChunkPtr::alloc();
    let mut w = ChunkWriter::new();
    w.begin_chunk(c, ChunkMeta::default());
    w.room()
        .unwrap()
        .write(|_: &mut [u8; 4]| 1_000_000, word_step(1, 0));
    assert_eq!(w.pos(), 4, "an encoder's length is capped at its array");
    assert!(!w.write_sized(|out| Some(out.len() + 1), word_step(1, 0)));
    assert_eq!(w.pos(), 4, "a sized event longer than the room is dropped");
    assert!(!w.write_sized(|_| None, word_step(1, 0)));
    assert!(w.write_sized(
        |out| {
            out[..3].copy_from_slice(b"abc");
            Some(3)
        },
        word_step(1, 0),
    ));
    assert!(w.fits(CHUNK_BYTES - 7) && !w.fits(CHUNK_BYTES - 6));
    assert_eq!(committed_len(c.get().committed_word()), 7);
    assert_eq!(committed_events(c.get().committed_word()), 2);
}

#[test]
fn scratch_writes_publish_nothing_and_a_new_chunk_keeps_the_depth() {
    let (a, b) = (ChunkPtr::alloc(), ChunkPtr::alloc());
    let mut w = ChunkWriter::new();
    w.begin_chunk(a, ChunkMeta::default());
    w.room().unwrap().write_pair([0, 0], word_step(1, 1));
    w.room().unwrap().write_pair([0, 0], word_step(1, 1));
    assert_eq!(committed_depth(a.get().committed_word()), 2);
    // No chunk free: discard into scratch, at the same depth.
    w.begin_discard();
    assert_eq!(w.pos(), 0);
    assert!(w.chunk().is_none());
    let mut n = 0;
    while let Some(room) = w.room() {
        room.write_pair([9, 9], word_step(1, 0));
        n += 2;
    }
    assert!(n > SCRATCH_BYTES - WRITE_RESERVE && n <= SCRATCH_BYTES);
    assert_eq!(
        committed_len(a.get().committed_word()),
        4,
        "the sealed chunk is untouched"
    );
    w.clear_scratch();
    assert_eq!(w.pos(), 0);
    // A new chunk starts empty at the thread's depth, before anything is written.
    w.begin_chunk(b, ChunkMeta::default());
    assert_eq!(b.get().committed_word(), 2 * COMMITTED_DEPTH);
    w.room().unwrap().write_pair([0, 0], word_step(1, -1));
    assert_eq!(committed_depth(b.get().committed_word()), 1);
    // Emptying is refused while writing a chunk: its bytes stay published.
    w.clear_scratch();
    assert_eq!(w.pos(), 2);
}
