//! What readers of untrusted traces rely on: tables that stay within their limits and say
//! what they dropped, events that resume mid-batch, clocks that never overflow.

use fdr_format::{
    Batch, BatchEncoder, ClockSync, Decoder, EventBatch, EventKind, ProcessInfo, SiteId, StrId,
    TableDrops, TableEncoder, TableLimits, Tables, ThreadId, TraceWriter,
};

fn apply_all(bytes: &[u8], tables: &mut Tables) {
    let mut d = Decoder::new(bytes).unwrap();
    while let Some(b) = d.next_batch() {
        if let Batch::Table(t) = b.unwrap() {
            tables.apply(&t).unwrap();
        }
    }
}

fn trace_with(table: &TableEncoder) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    w.write_table(table, true).unwrap();
    w.finish().unwrap()
}

#[test]
fn tables_keep_definitions_within_their_limits_and_count_the_rest() {
    let mut t = TableEncoder::new();
    for i in 1..=10u32 {
        t.string(StrId(i), &"x".repeat(100));
    }
    for i in 1..=10u32 {
        t.site(SiteId(i), StrId(i), i, 1);
        t.thread(ThreadId(i), u64::from(i), &"t".repeat(50));
    }
    // A later definition of a kept id replaces it; one of a dropped id is dropped again.
    t.string(StrId(1), "short");
    t.string(StrId(10), "still dropped");
    let bytes = trace_with(&t);

    let mut unbounded = Tables::new();
    apply_all(&bytes, &mut unbounded);
    assert_eq!(unbounded.string_count(), 10);
    assert_eq!(unbounded.dropped(), TableDrops::default());

    let mut tables = Tables::with_limits(TableLimits {
        max_strings: 4,
        max_text_bytes: 480,
        max_sites: 3,
        max_threads: 2,
    });
    apply_all(&bytes, &mut tables);
    assert_eq!(tables.string_count(), 4);
    assert_eq!(tables.string(StrId(1)), Some("short"));
    assert_eq!(tables.string(StrId(5)), None);
    assert_eq!(tables.name(StrId(5)), "#5");
    assert_eq!(tables.site_count(), 3);
    assert!(tables.site(SiteId(4)).is_none());
    // 4 strings of 100 bytes leave room for one 50-byte thread name within 480 bytes,
    // though two threads would be allowed.
    assert_eq!(tables.thread_count(), 1);
    let d = tables.dropped();
    assert_eq!((d.strings, d.sites, d.threads), (7, 7, 9));
    assert!(d.any());
    assert_eq!(d.text_bytes, 6 * 100 + 9 * 50 + 13);
}

#[test]
fn events_resume_from_where_decoding_stopped() {
    let mut buf = [0u8; 4096];
    let mut enc = BatchEncoder::new(&mut buf, 1000);
    let kinds = [
        EventKind::RegionBegin { name: StrId(1) },
        EventKind::Log {
            category: StrId(2),
            message: fdr_format::Message::Inline(b"inline text"),
        },
        EventKind::RegionEnd { name: StrId(1) },
        EventKind::Park,
    ];
    for (i, k) in kinds.iter().enumerate() {
        enc.push(1000 + 300 * i as u64 + 1, k).unwrap();
    }
    let whole = EventBatch {
        offset: 500,
        thread: ThreadId(1),
        seq: 0,
        base_ts: 1000,
        payload: enc.payload(),
    };
    let all: Vec<_> = whole.events().map(Result::unwrap).collect();
    for stop in 0..=kinds.len() {
        let mut first = whole.events();
        let head: Vec<_> = first.by_ref().take(stop).map(Result::unwrap).collect();
        let at = first.bytes_decoded();
        let rest = EventBatch {
            offset: whole.offset + at as u64,
            base_ts: first.last_ts(),
            payload: &whole.payload[at..],
            ..whole
        };
        let tail: Vec<_> = rest.events().map(Result::unwrap).collect();
        let joined: Vec<_> = head.into_iter().chain(tail).collect();
        assert_eq!(joined, all, "stopped after {stop}");
    }
}

#[test]
fn wall_clock_of_an_extreme_clock_saturates() {
    let c = ClockSync {
        ticks: 0,
        mono_ns: 0,
        wall_unix_ns: u64::MAX,
        ticks_per_sec: 1e-300,
    };
    assert_eq!(c.wall_ns(u64::MAX), i128::MAX);
    assert!(c.wall_ns(0) > 0);
}
