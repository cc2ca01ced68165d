//! Encode-then-decode properties of the trace format.

use fdr_format::encode::{self, TableEncoder, TraceWriter};
use fdr_format::wire::*;
use fdr_format::*;
use proptest::prelude::*;

/// An event with owned data, so proptest can generate it.
#[derive(Debug, Clone)]
enum Owned {
    Region(bool, u32),
    LogInterned(u32, u32),
    LogInline(u32, Vec<u8>),
    Ext(u8, u64, u64, u32, u32),
    Metric(u32, f64),
    Otel(u64, [u8; 16], [u8; 8]),
    Loss(u8, u64, u64),
    Block(u8, u32),
    Os(u32, u8, [Option<u64>; 3], Option<u8>),
    /// Thread, cause, truncated, encoded frames, frame count, age.
    Stack(u32, u8, bool, Vec<u8>, usize, Option<u64>),
    AsyncRegion(bool, u64, u64, u32),
}

impl Owned {
    fn kind(&self) -> EventKind<'_> {
        match self {
            Owned::Region(true, n) => EventKind::RegionBegin { name: StrId(*n) },
            Owned::Region(false, n) => EventKind::RegionEnd { name: StrId(*n) },
            Owned::LogInterned(c, m) => EventKind::Log {
                category: StrId(*c),
                message: Message::Interned(StrId(*m)),
            },
            Owned::LogInline(c, m) => EventKind::Log {
                category: StrId(*c),
                message: Message::Inline(m),
            },
            Owned::Ext(k, a, b, n, s) => match k % 12 {
                0 => EventKind::ThreadStart,
                1 => EventKind::ThreadEnd,
                2 => EventKind::TaskCreate {
                    task: TaskId(*a),
                    parent: TaskId(*b),
                    name: StrId(*n),
                    site: SiteId(*s),
                },
                3 => EventKind::PollStart { task: TaskId(*a) },
                4 => EventKind::PollEnd {
                    task: TaskId(*a),
                    ready: b % 2 == 0,
                },
                5 => EventKind::Wake {
                    task: TaskId(*a),
                    waker: TaskId(*b),
                },
                6 => EventKind::TaskDrop { task: TaskId(*a) },
                7 => EventKind::UserTaskBegin {
                    task: TaskId(*a),
                    parent: TaskId(*b),
                    name: StrId(*n),
                },
                8 => EventKind::UserTaskEnd { task: TaskId(*a) },
                9 => EventKind::BlockEnd,
                10 => EventKind::Park,
                _ => EventKind::Unpark,
            },
            Owned::Metric(n, v) => EventKind::Metric {
                name: StrId(*n),
                value: *v,
            },
            Owned::Otel(t, tr, sp) => EventKind::OtelLink {
                task: TaskId(*t),
                trace_id: *tr,
                span_id: *sp,
            },
            Owned::Loss(r, e, b) => EventKind::Loss {
                reason: LossReason::from_wire(*r),
                events: *e,
                bytes: *b,
            },
            Owned::Block(r, s) => EventKind::BlockBegin {
                reason: BlockReason::from_wire(*r),
                site: SiteId(*s),
            },
            Owned::Os(t, c, [cpu, runq, slices], state) => EventKind::OsSample {
                thread: ThreadId(*t),
                cause: SampleCause::from_wire(*c),
                cpu_ns: *cpu,
                runq_ns: *runq,
                timeslices: *slices,
                state: *state,
            },
            Owned::Stack(t, c, truncated, frames, n, age) => EventKind::Stack {
                thread: ThreadId(*t),
                cause: SampleCause::from_wire(*c),
                truncated: *truncated,
                frames: StackFrames::from_encoded(frames, *n).expect("encoded frames"),
                age_ticks: *age,
            },
            Owned::AsyncRegion(true, r, t, n) => EventKind::AsyncRegionBegin {
                region: *r,
                task: TaskId(*t),
                name: StrId(*n),
            },
            Owned::AsyncRegion(false, r, t, _) => EventKind::AsyncRegionEnd {
                region: *r,
                task: TaskId(*t),
            },
        }
    }
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (any::<bool>(), any::<u32>()).prop_map(|(b, n)| Owned::Region(b, n)),
        (any::<u32>(), any::<u32>()).prop_map(|(c, m)| Owned::LogInterned(c, m)),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(c, m)| Owned::LogInline(c, m)),
        (
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(k, a, b, n, s)| Owned::Ext(k, a, b, n, s)),
        (any::<u32>(), -1e300f64..1e300).prop_map(|(n, v)| Owned::Metric(n, v)),
        (any::<u64>(), any::<[u8; 16]>(), any::<[u8; 8]>())
            .prop_map(|(t, a, b)| Owned::Otel(t, a, b)),
        (any::<u8>(), any::<u64>(), any::<u64>()).prop_map(|(r, e, b)| Owned::Loss(r, e, b)),
        (any::<u8>(), any::<u32>()).prop_map(|(r, s)| Owned::Block(r, s)),
        (
            any::<u32>(),
            any::<u8>(),
            any::<[Option<u64>; 3]>(),
            any::<Option<u8>>()
        )
            .prop_map(|(t, c, v, s)| Owned::Os(t, c, v, s)),
        (
            any::<u32>(),
            any::<u8>(),
            any::<bool>(),
            // Small enough for the smallest batch; the frame limit has its own test.
            proptest::collection::vec(any::<u64>(), 0..12),
            any::<Option<u64>>()
        )
            .prop_map(|(t, c, tr, addrs, age)| {
                let mut frames = Vec::new();
                let n = StackFrames::encode(&addrs, &mut frames);
                Owned::Stack(t, c, tr, frames, n, age)
            }),
        (any::<bool>(), any::<u64>(), any::<u64>(), any::<u32>())
            .prop_map(|(b, r, t, n)| Owned::AsyncRegion(b, r, t, n)),
    ]
}

/// Encodes `(thread, [(delta, event)])` batches into a trace, splitting batches at `batch_bytes`.
fn write_trace(threads: &[(u32, Vec<(u64, Owned)>)], batch_bytes: usize) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    let mut t = TableEncoder::new();
    t.string(StrId(1), "x");
    w.write_table(&t, true).unwrap();
    let mut buf = vec![0u8; batch_bytes];
    for (thread, events) in threads {
        let mut ts = 10u64;
        let mut seq = 0;
        let mut enc = BatchEncoder::new(&mut buf, ts);
        for (delta, e) in events {
            ts = ts.saturating_add(*delta);
            if enc.push(ts, &e.kind()).is_err() {
                w.write_events(ThreadId(*thread), seq, enc.base_ts(), enc.payload())
                    .unwrap();
                seq += 1;
                enc = BatchEncoder::new(&mut buf, ts);
                enc.push(ts, &e.kind()).unwrap();
            }
        }
        if !enc.is_empty() {
            w.write_events(ThreadId(*thread), seq, enc.base_ts(), enc.payload())
                .unwrap();
        }
    }
    w.finish().unwrap()
}

/// Decodes every event of a trace: (thread, ts, debug text of the kind).
fn read_all(bytes: &[u8]) -> (Vec<(u32, u64, String)>, Option<DecodeError>) {
    let mut out = Vec::new();
    let mut d = match Decoder::new(bytes) {
        Ok(d) => d,
        Err(e) => return (out, Some(e)),
    };
    while let Some(b) = d.next_batch() {
        match b {
            Err(e) => return (out, Some(e)),
            Ok(Batch::Table(_)) => {}
            Ok(Batch::Events(b)) => {
                for e in b.events() {
                    match e {
                        Ok(e) => out.push((b.thread.0, e.ts, format!("{:?}", e.kind))),
                        Err(e) => return (out, Some(e)),
                    }
                }
            }
        }
    }
    (out, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_events_round_trip(
        threads in proptest::collection::vec(
            (1u32..8, proptest::collection::vec((0u64..1 << 40, owned()), 0..200)),
            1..4,
        ),
        batch_bytes in 160usize..4096,
    ) {
        let bytes = write_trace(&threads, batch_bytes);
        let (decoded, err) = read_all(&bytes);
        prop_assert!(err.is_none(), "{err:?}");
        let mut expected = Vec::new();
        for (thread, events) in &threads {
            let mut ts = 10u64;
            for (delta, e) in events {
                ts = ts.saturating_add(*delta);
                expected.push((*thread, ts, format!("{:?}", e.kind())));
            }
        }
        prop_assert_eq!(decoded, expected);
    }
}

/// Every event batch's events decoded in runs of `run` by `Events::decode_up_to`, as
/// (ts, debug text of the kind), with the error that stopped them, skipped unknown kinds,
/// bytes decoded and last timestamp.
type RunsOutcome = (Vec<(u64, String)>, Option<DecodeError>, u64, usize, u64);

fn decode_in_runs(b: &EventBatch<'_>, run: usize) -> RunsOutcome {
    let mut events = b.events();
    let mut out = Vec::new();
    let mut err = None;
    // Bounded: a run that adds nothing ends the loop.
    loop {
        let before = (out.len(), events.bytes_decoded());
        if let Err(e) = events.decode_up_to(run, |e| out.push((e.ts, format!("{:?}", e.kind)))) {
            err = Some(e);
            // Nothing follows an error.
            events
                .decode_up_to(run, |e| out.push((e.ts, format!("{:?}", e.kind))))
                .unwrap();
            break;
        }
        assert!(out.len() - before.0 <= run);
        if (out.len(), events.bytes_decoded()) == before {
            break;
        }
    }
    let (skipped, at, ts) = (
        events.skipped_unknown(),
        events.bytes_decoded(),
        events.last_ts(),
    );
    (out, err, skipped, at, ts)
}

/// The same, one `next` at a time.
fn decode_one_by_one(b: &EventBatch<'_>) -> RunsOutcome {
    let mut events = b.events();
    let mut out = Vec::new();
    let mut err = None;
    for e in &mut events {
        match e {
            Ok(e) => out.push((e.ts, format!("{:?}", e.kind))),
            Err(e) => err = Some(e),
        }
    }
    let (skipped, at, ts) = (
        events.skipped_unknown(),
        events.bytes_decoded(),
        events.last_ts(),
    );
    (out, err, skipped, at, ts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn runs_decode_what_next_decodes(
        events in proptest::collection::vec((0u64..1 << 40, owned()), 0..200),
        run in 1usize..40,
    ) {
        let bytes = write_trace(&[(1, events)], 4096);
        let mut d = Decoder::new(&bytes).unwrap();
        while let Some(b) = d.next_batch() {
            if let Batch::Events(b) = b.unwrap() {
                prop_assert_eq!(decode_in_runs(&b, run), decode_one_by_one(&b));
            }
        }
    }
}

#[test]
fn runs_stop_at_a_malformed_event_as_next_does() {
    let mut p = Vec::new();
    let mut e = [0u8; MAX_SMALL_EVENT_LEN];
    let n = encode::region_begin(&mut e, 5, StrId(1));
    p.extend_from_slice(&e[..n]);
    // A sized kind of a newer minor (skipped), then an undefined fixed kind (an error).
    fdr_format::varint::push(&mut p, 0);
    fdr_format::varint::push(&mut p, (70 << 2) | 3);
    fdr_format::varint::push(&mut p, 2);
    p.extend_from_slice(&[9, 9]);
    let n = encode::region_end(&mut e, 1, StrId(1));
    p.extend_from_slice(&e[..n]);
    fdr_format::varint::push(&mut p, 0);
    fdr_format::varint::push(&mut p, (40 << 2) | 3);
    let n = encode::region_begin(&mut e, 1, StrId(1));
    p.extend_from_slice(&e[..n]);
    let b = EventBatch {
        offset: 100,
        thread: ThreadId(1),
        seq: 0,
        base_ts: 10,
        payload: &p,
    };
    let whole = decode_one_by_one(&b);
    assert_eq!(whole.0.len(), 2);
    assert_eq!(
        whole.1.as_ref().unwrap().kind,
        ErrorKind::UnknownFixedKind(40)
    );
    assert_eq!(whole.2, 1);
    for run in 1..5 {
        assert_eq!(decode_in_runs(&b, run), whole, "runs of {run}");
    }
}

#[test]
fn every_truncation_decodes_its_whole_batch_prefix_and_names_the_offset() {
    let bytes = testing::sample_trace_with(testing::SampleSpec {
        threads: 2,
        events_per_thread: 300,
        batch_bytes: 256,
        ..Default::default()
    });
    // Batch boundaries: (end offset, events in all batches up to it).
    let mut boundaries = Vec::new();
    {
        let mut d = Decoder::new(&bytes).unwrap();
        let mut events = 0;
        while let Some(b) = d.next_batch() {
            if let Batch::Events(b) = b.unwrap() {
                events += b.events().count();
            }
            boundaries.push((d.stats().bytes, events));
        }
    }
    let header_len = boundaries.first().map(|_| {
        let d = Decoder::new(&bytes).unwrap();
        d.stats().bytes
    });
    let header_len = header_len.unwrap() as usize;
    for cut in 0..bytes.len() {
        let (events, err) = read_all(&bytes[..cut]);
        let err = err.unwrap_or_else(|| panic!("cut at {cut}: no error"));
        if cut < header_len {
            assert_eq!(
                err.offset,
                if cut < 16 { 0 } else { cut as u64 },
                "cut {cut}: {err}"
            );
            continue;
        }
        // Whole batches before the cut are all decoded; the error is at the first cut batch.
        let whole = boundaries
            .iter()
            .rev()
            .find(|(end, _)| *end as usize <= cut);
        let (end, expected_events) = whole.copied().unwrap_or((header_len as u64, 0));
        assert_eq!(events.len(), expected_events, "cut at {cut}");
        assert_eq!(err.offset, end, "cut at {cut}: {err}");
        assert!(
            matches!(
                err.kind,
                ErrorKind::MissingEnd
                    | ErrorKind::TruncatedBatch { .. }
                    | ErrorKind::TruncatedBatchHeader { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
    let (_, err) = read_all(&bytes);
    assert!(err.is_none());
}

#[test]
fn flipped_bytes_never_panic_and_are_caught() {
    let bytes = testing::sample_trace_with(testing::SampleSpec {
        threads: 2,
        events_per_thread: 200,
        batch_bytes: 512,
        ..Default::default()
    });
    let (clean, _) = read_all(&bytes);
    for i in 0..bytes.len() {
        for bit in [0u8, 3, 7] {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let (events, err) = read_all(&b);
            // Every flip inside a checksummed batch or the header is detected; events
            // before it are those of the whole batches before the damage.
            assert!(err.is_some(), "flip at byte {i} bit {bit} went unnoticed");
            assert!(events.len() <= clean.len());
            assert_eq!(
                &clean[..events.len()],
                &events[..],
                "flip at {i}: prefix differs"
            );
        }
    }
}

#[test]
fn unknown_sized_kinds_are_skipped_and_counted() {
    let mut head = [0u8; MAX_SMALL_EVENT_LEN];
    let n = encode::region_begin(&mut head, 5, StrId(1));
    // An extended kind from a newer minor version: kind 70, with 3 bytes of fields.
    let mut p = Vec::new();
    p.extend_from_slice(&head[..n]);
    fdr_format::varint::push(&mut p, 0);
    fdr_format::varint::push(&mut p, (70 << 2) | 3);
    fdr_format::varint::push(&mut p, 3);
    p.extend_from_slice(&[9, 9, 9]);
    let mut tail = [0u8; 24];
    let k = encode::region_end(&mut tail, 1, StrId(1));
    p.extend_from_slice(&tail[..k]);
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    w.write_events(ThreadId(1), 0, 100, &p).unwrap();
    let bytes = w.finish().unwrap();
    let mut d = Decoder::new(&bytes).unwrap();
    let Some(Ok(Batch::Events(b))) = d.next_batch() else {
        panic!("no batch")
    };
    let mut it = b.events();
    let got: Vec<_> = (&mut it).map(|e| e.unwrap().kind).collect();
    assert_eq!(
        got,
        vec![
            EventKind::RegionBegin { name: StrId(1) },
            EventKind::RegionEnd { name: StrId(1) }
        ]
    );
    assert_eq!(it.skipped_unknown(), 1);
}

#[test]
fn stack_frames_round_trip_their_addresses() {
    let addrs = [0x5555_5555_1234, 0x7fff_0000_0010, 0x10, u64::MAX, 0];
    let mut bytes = Vec::new();
    assert_eq!(StackFrames::encode(&addrs, &mut bytes), addrs.len());
    let frames = StackFrames::from_encoded(&bytes, addrs.len()).unwrap();
    assert_eq!(frames.iter().collect::<Vec<_>>(), addrs);
    // A count that does not match the bytes is refused.
    assert!(StackFrames::from_encoded(&bytes, addrs.len() - 1).is_none());
    assert!(StackFrames::from_encoded(&bytes, addrs.len() + 1).is_none());
    // At most MAX_STACK_FRAMES are kept, and a full stack fits MAX_STACK_EVENT_LEN.
    let deep: Vec<u64> = (0..MAX_STACK_FRAMES as u64 + 40)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    assert_eq!(StackFrames::encode(&deep, &mut bytes), MAX_STACK_FRAMES);
    let frames = StackFrames::from_encoded(&bytes, MAX_STACK_FRAMES).unwrap();
    let kind = EventKind::Stack {
        thread: ThreadId(1),
        cause: SampleCause::CpuTimer,
        truncated: true,
        frames,
        age_ticks: Some(u64::MAX),
    };
    let mut out = [0u8; MAX_STACK_EVENT_LEN];
    let n = encode::encode_event(&mut out, u64::MAX, &kind).expect("a full stack fits");
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    w.write_events(ThreadId(1), 0, 0, &out[..n]).unwrap();
    let trace = w.finish().unwrap();
    let (events, err) = read_all(&trace);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].2, format!("{kind:?}"));
}

#[test]
fn fields_a_newer_minor_appends_to_a_known_sized_kind_are_skipped() {
    // An async region end with one extra field after the two this version knows.
    let mut p = Vec::new();
    fdr_format::varint::push(&mut p, 0);
    fdr_format::varint::push(&mut p, (EXT_ASYNC_REGION_END << 2) | 3);
    fdr_format::varint::push(&mut p, 3);
    p.extend_from_slice(&[5, 6, 42]);
    let mut tail = [0u8; 24];
    let k = encode::region_end(&mut tail, 1, StrId(1));
    p.extend_from_slice(&tail[..k]);
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    w.write_events(ThreadId(1), 0, 100, &p).unwrap();
    let bytes = w.finish().unwrap();
    let mut d = Decoder::new(&bytes).unwrap();
    let Some(Ok(Batch::Events(b))) = d.next_batch() else {
        panic!("no batch")
    };
    let mut it = b.events();
    let got: Vec<_> = (&mut it).map(|e| e.unwrap().kind).collect();
    assert_eq!(
        got,
        vec![
            EventKind::AsyncRegionEnd {
                region: 5,
                task: TaskId(6)
            },
            EventKind::RegionEnd { name: StrId(1) }
        ]
    );
    assert_eq!(it.skipped_unknown(), 0);
}

#[test]
fn a_module_record_round_trips_and_resolves_addresses() {
    let mut t = TableEncoder::new();
    t.module(0x1000, 0x3000, 0x400, b"/usr/bin/app", &[1, 2, 3])
        .module(0x8000, 0x9000, 0, b"/lib/libc.so.6", &[]);
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    w.write_table(&t, true).unwrap();
    let bytes = w.finish().unwrap();
    let mut d = Decoder::new(&bytes).unwrap();
    let mut tables = Tables::new();
    while let Some(b) = d.next_batch() {
        if let Batch::Table(tb) = b.unwrap() {
            tables.apply(&tb).unwrap();
        }
    }
    let app = tables.module_of(0x2fff).expect("inside the first mapping");
    assert_eq!(app.path, "/usr/bin/app");
    assert_eq!(app.build_id_hex(), "010203");
    assert_eq!(app.file_offset_of(0x1010), 0x410);
    assert!(tables.module_of(0x3000).is_none());
    assert!(tables.module_of(0xfff).is_none());
    assert_eq!(tables.module_of(0x8000).unwrap().path, "/lib/libc.so.6");
    assert_eq!(tables.modules().count(), 2);
}

#[test]
fn undefined_fixed_kind_is_an_error_with_offset() {
    let mut p = Vec::new();
    fdr_format::varint::push(&mut p, 0);
    fdr_format::varint::push(&mut p, (40 << 2) | 3);
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    w.write_events(ThreadId(1), 0, 100, &p).unwrap();
    let bytes = w.finish().unwrap();
    let header = Decoder::new(&bytes).unwrap().stats().bytes;
    let (_, err) = read_all(&bytes);
    let err = err.unwrap();
    assert_eq!(err.kind, ErrorKind::UnknownFixedKind(40));
    assert_eq!(err.offset, header + BATCH_HEADER_LEN as u64);
}

#[test]
fn reader_input_matches_slice_input() {
    let bytes = testing::sample_trace();
    let mut a = Decoder::new(&bytes).unwrap();
    let mut b = Decoder::from_reader(std::io::Cursor::new(bytes.clone())).unwrap();
    let mut c = Decoder::from_bytes(bytes::Bytes::from(bytes.clone())).unwrap();
    loop {
        let x = a
            .next_batch()
            .map(|r| format!("{:?}", r.map(|b| batch_events(&b))));
        let y = b
            .next_batch()
            .map(|r| format!("{:?}", r.map(|b| batch_events(&b))));
        let z = c
            .next_batch()
            .map(|r| format!("{:?}", r.map(|b| batch_events(&b))));
        assert_eq!(x, y);
        assert_eq!(x, z);
        if x.is_none() {
            break;
        }
    }
    assert_eq!(a.process_info().program, "sample");
}

fn batch_events(b: &Batch<'_>) -> Vec<String> {
    match b {
        Batch::Events(b) => b.events().map(|e| format!("{e:?}")).collect(),
        Batch::Table(t) => t.records().map(|r| format!("{r:?}")).collect(),
    }
}

#[test]
fn a_suffix_starting_at_a_full_table_decodes_alone() {
    // The flight recorder's shape: header, full table, then only the newest batches.
    let full = testing::sample_trace();
    let mut d = Decoder::new(&full).unwrap();
    let mut tables = Tables::new();
    let mut kept = Vec::new();
    while let Some(b) = d.next_batch() {
        match b.unwrap() {
            Batch::Table(t) => tables.apply(&t).unwrap(),
            Batch::Events(b) => kept.push((b.thread, b.seq, b.base_ts, b.payload.to_vec())),
        }
    }
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    let mut t = TableEncoder::new();
    for (i, s) in testing::SAMPLE_STRINGS.iter().enumerate().skip(1) {
        t.string(StrId(i as u32), s);
    }
    w.write_table(&t, true).unwrap();
    for (thread, seq, base, p) in &kept[kept.len() / 2..] {
        w.write_events(*thread, *seq, *base, p).unwrap();
    }
    let bytes = w.finish().unwrap();
    let (events, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    assert!(!events.is_empty());
    assert_eq!(tables.string(StrId(3)), Some("db"));
}

#[test]
fn bad_magic_and_version_are_named() {
    let e = Decoder::new(b"GIF89a.......................").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadMagic);
    let mut bytes = testing::sample_trace();
    bytes[8] = 9;
    let e = Decoder::new(&bytes).unwrap_err();
    assert!(matches!(
        e.kind,
        ErrorKind::UnsupportedVersion { major: 9, .. }
    ));
    assert!(e.to_string().contains("at byte 8"), "{e}");
}

#[test]
fn hot_path_writers_match_the_general_encoder() {
    for delta in [0u64, 1, 127, 128, 16383, 16384, 1 << 40] {
        for name in [0u32, 31, 32, 4095, 4096, u32::MAX] {
            let mut a = [0u8; MAX_SMALL_EVENT_LEN];
            let mut b = [0u8; 64];
            let n = encode::region_begin(&mut a, delta, StrId(name));
            let m =
                encode::encode_event(&mut b, delta, &EventKind::RegionBegin { name: StrId(name) })
                    .unwrap();
            assert_eq!(&a[..n], &b[..m]);
            let n = encode::log_static(&mut a, delta, StrId(name), StrId(name));
            let kind = EventKind::Log {
                category: StrId(name),
                message: Message::Interned(StrId(name)),
            };
            let m = encode::encode_event(&mut b, delta, &kind).unwrap();
            assert_eq!(&a[..n], &b[..m]);
        }
    }
}

#[test]
fn task_writers_match_the_general_encoder() {
    // Boundaries of each varint length, up to a u64 with every bit set.
    let deltas = [
        0u64,
        1,
        127,
        128,
        16383,
        16384,
        (1 << 21) - 1,
        1 << 40,
        u64::MAX,
    ];
    let tasks = [0u64, 1, 127, 128, 16383, 16384, 1 << 62, u64::MAX];
    let ids = [0u32, 127, 128, 16384, u32::MAX];
    let check = |delta: u64, n: usize, a: &[u8], kind: EventKind<'_>| {
        let mut b = [0u8; MAX_FIXED_EVENT_LEN];
        let m = encode::encode_event(&mut b, delta, &kind).unwrap();
        assert_eq!(&a[..n], &b[..m], "{kind:?} delta {delta}");
    };
    for delta in deltas {
        for t in tasks.map(TaskId) {
            let mut s = [0u8; MAX_SMALL_EVENT_LEN];
            let mut f = [0u8; MAX_FIXED_EVENT_LEN];
            let n = encode::poll_start(&mut s, delta, t);
            check(delta, n, &s, EventKind::PollStart { task: t });
            for ready in [false, true] {
                let n = encode::poll_end(&mut s, delta, t, ready);
                check(delta, n, &s, EventKind::PollEnd { task: t, ready });
            }
            let n = encode::task_drop(&mut s, delta, t);
            check(delta, n, &s, EventKind::TaskDrop { task: t });
            for other in tasks.map(TaskId) {
                let n = encode::wake(&mut f, delta, t, other);
                check(
                    delta,
                    n,
                    &f,
                    EventKind::Wake {
                        task: t,
                        waker: other,
                    },
                );
                for id in ids {
                    let (name, site) = (StrId(id), SiteId(id));
                    let n = encode::task_create(&mut f, delta, t, other, name, site);
                    let kind = EventKind::TaskCreate {
                        task: t,
                        parent: other,
                        name,
                        site,
                    };
                    check(delta, n, &f, kind);
                }
            }
        }
    }
}

#[test]
fn a_stack_carries_its_age_and_one_written_without_it_reads_as_none() {
    // Thread 3, cause CPU timer, then flags, two frames (0x10, then +0x10), then the tail.
    let stack = |flags: u64, tail: &[u8]| {
        let mut body = Vec::new();
        for v in [3, 3, flags, 2, 0x20, 0x20] {
            fdr_format::varint::push(&mut body, v);
        }
        body.extend_from_slice(tail);
        let mut p = Vec::new();
        fdr_format::varint::push(&mut p, 0);
        fdr_format::varint::push(&mut p, (EXT_STACK << 2) | 3);
        fdr_format::varint::push(&mut p, body.len() as u64);
        p.extend_from_slice(&body);
        let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
        w.write_events(ThreadId(1), 0, 100, &p).unwrap();
        let bytes = w.finish().unwrap();
        let (events, err) = read_all(&bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(events.len(), 1);
        let mut d = Decoder::new(&bytes).unwrap();
        let Some(Ok(Batch::Events(b))) = d.next_batch() else {
            panic!("no batch")
        };
        match b.events().next().unwrap().unwrap().kind {
            EventKind::Stack {
                truncated,
                frames,
                age_ticks,
                ..
            } => (truncated, frames.iter().collect::<Vec<_>>(), age_ticks),
            k => panic!("not a stack: {k:?}"),
        }
    };
    // As written before stacks carried their age: truncated, no age.
    assert_eq!(stack(1, &[]), (true, vec![0x10, 0x20], None));
    // With its age (300 ticks), and with a flag and a field a later minor may add after it.
    assert_eq!(
        stack(2, &[0xAC, 0x02]),
        (false, vec![0x10, 0x20], Some(300))
    );
    assert_eq!(
        stack(2 | 8, &[0xAC, 0x02, 7, 9]),
        (false, vec![0x10, 0x20], Some(300))
    );
}
