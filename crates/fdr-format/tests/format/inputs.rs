//! The decoder over awkward inputs: readers that deliver bytes in dribs and drabs or fail,
//! batches at and over the size limit, bytes after the end marker, invalid UTF-8, and
//! damage behind intact checksums.

use std::io::{self, Read};

use fdr_format::checksum::batch_checksum;
use fdr_format::encode::{batch_header, file_header};
use fdr_format::wire::*;
use fdr_format::*;

/// A reader that returns at most `piece` bytes per call and fails with `Interrupted`
/// before every third read; after `fail_at` bytes it fails for good.
struct Dribble<'a> {
    data: &'a [u8],
    pos: usize,
    piece: usize,
    calls: u64,
    fail_at: Option<usize>,
}

impl<'a> Dribble<'a> {
    fn new(data: &'a [u8], piece: usize) -> Self {
        Dribble {
            data,
            pos: 0,
            piece,
            calls: 0,
            fail_at: None,
        }
    }
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let mut end = self.data.len();
        if let Some(f) = self.fail_at {
            if self.pos >= f {
                return Err(io::Error::from(io::ErrorKind::ConnectionReset));
            }
            end = end.min(f);
        }
        let n = self.piece.min(buf.len()).min(end - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Everything a decode yields, as text: batches, events, records, and the final error.
fn transcript<I: Input>(d: Result<Decoder<I>, DecodeError>) -> Vec<String> {
    let mut out = Vec::new();
    let mut d = match d {
        Ok(d) => d,
        Err(e) => return vec![format!("header error: {e}")],
    };
    out.push(format!("{:?}", d.process_info()));
    while let Some(b) = d.next_batch() {
        match b {
            Err(e) => out.push(format!("error: {e} ({:?})", e.kind)),
            Ok(Batch::Events(b)) => {
                out.push(format!(
                    "events {:?} seq {} at {}",
                    b.thread, b.seq, b.offset
                ));
                out.extend(b.events().map(|e| format!("{e:?}")));
            }
            Ok(Batch::Table(t)) => {
                out.push(format!("table full={} at {}", t.full, t.offset));
                out.extend(t.records().map(|r| format!("{r:?}")));
            }
        }
    }
    out.push(format!("{:?}", d.stats()));
    out
}

#[test]
fn a_reader_with_short_reads_and_interruptions_decodes_like_a_slice() {
    for bytes in [testing::sample_trace(), testing::every_kind_trace()] {
        let expected = transcript(Decoder::new(&bytes));
        assert!(expected.len() > 10);
        for piece in [1, 3, 64, 5000] {
            let got = transcript(Decoder::from_reader(Dribble::new(&bytes, piece)));
            assert_eq!(got, expected, "pieces of {piece} bytes");
        }
    }
}

#[test]
fn a_failing_reader_yields_the_whole_batches_before_it_then_an_io_error() {
    let bytes = testing::sample_trace_with(testing::SampleSpec {
        threads: 2,
        events_per_thread: 200,
        batch_bytes: 300,
        ..Default::default()
    });
    // Batch end offsets, from a clean decode.
    let mut ends = Vec::new();
    let mut d = Decoder::new(&bytes).unwrap();
    let header_len = d.stats().bytes;
    while let Some(b) = d.next_batch() {
        b.unwrap();
        ends.push(d.stats().bytes);
    }
    for fail_at in [header_len as usize + 5, bytes.len() / 2, bytes.len() - 3] {
        let mut r = Dribble::new(&bytes, 7);
        r.fail_at = Some(fail_at);
        let mut d = Decoder::from_reader(r).unwrap();
        let mut whole = 0;
        let err = loop {
            match d.next_batch() {
                Some(Ok(_)) => whole += 1,
                Some(Err(e)) => break e,
                None => panic!("fail at {fail_at}: decoding ended without the I/O error"),
            }
        };
        assert_eq!(err.kind, ErrorKind::Io(io::ErrorKind::ConnectionReset));
        let expected_whole = ends.iter().filter(|&&e| e as usize <= fail_at).count();
        assert_eq!(whole, expected_whole, "fail at {fail_at}");
        assert!(d.next_batch().is_none(), "nothing after the error");
    }
}

/// A trace of one event batch with `payload`, framed by hand.
fn one_batch_trace(payload: &[u8]) -> Vec<u8> {
    let mut out = file_header(&ProcessInfo::default());
    out.extend_from_slice(&batch_header(TAG_EVENTS, 0, ThreadId(1), 0, 10, payload));
    out.extend_from_slice(payload);
    let mut end = Vec::new();
    varint::push(&mut end, 1);
    out.extend_from_slice(&batch_header(TAG_END, 0, ThreadId(0), 0, 0, &end));
    out.extend_from_slice(&end);
    out
}

#[test]
fn a_batch_at_the_size_limit_decodes_and_one_over_it_is_refused_by_name() {
    // Exactly MAX_BATCH_PAYLOAD bytes of region-begin events (delta 0, name 1: two bytes each).
    let mut payload = Vec::with_capacity(MAX_BATCH_PAYLOAD as usize);
    while payload.len() < MAX_BATCH_PAYLOAD as usize {
        payload.extend_from_slice(&[0, 1 << CODE_BITS]);
    }
    let bytes = one_batch_trace(&payload);
    let header_len = Decoder::new(&bytes).unwrap().stats().bytes;
    for d in [
        Decoder::new(&bytes).map(|d| Box::new(d) as Box<dyn Next>),
        Decoder::from_reader(Dribble::new(&bytes, 1 << 20)).map(|d| Box::new(d) as Box<dyn Next>),
    ] {
        let mut d = d.unwrap();
        assert_eq!(d.events_of_next(), Some(Ok(MAX_BATCH_PAYLOAD as usize / 2)));
        assert_eq!(d.events_of_next(), None, "the end marker follows");
    }

    // One byte more: the declared length alone condemns the batch; nothing is read or allocated for it.
    let mut over = bytes[..header_len as usize].to_vec();
    let mut h = batch_header(TAG_EVENTS, 0, ThreadId(1), 0, 10, &[]);
    h[4..8].copy_from_slice(&(MAX_BATCH_PAYLOAD + 1).to_le_bytes());
    over.extend_from_slice(&h);
    over.extend_from_slice(&[0; 64]);
    let mut d = Decoder::new(&over).unwrap();
    let err = d.next_batch().unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::BatchTooLarge(MAX_BATCH_PAYLOAD + 1));
    assert_eq!(err.offset, header_len + 4, "names the length field");
    let text = err.to_string();
    assert!(
        text.contains("16777217") && text.contains("16777216-byte limit"),
        "{text}"
    );
    assert!(d.next_batch().is_none());

    // The writer refuses to frame such a batch rather than write one no reader accepts.
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    let too_big = vec![0u8; MAX_BATCH_PAYLOAD as usize + 1];
    let e = w.write_events(ThreadId(1), 0, 0, &too_big).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(w.batches_written(), 0);
    assert!(Decoder::new(&w.finish().unwrap()).is_ok());
}

/// Object-safe view of a decoder over any input, for running one check over several.
trait Next {
    /// Events in the next batch (or the error), `None` at the end.
    fn events_of_next(&mut self) -> Option<Result<usize, DecodeError>>;
}

impl<I: Input> Next for Decoder<I> {
    fn events_of_next(&mut self) -> Option<Result<usize, DecodeError>> {
        Some(self.next_batch()?.map(|b| match b {
            Batch::Events(b) => b.events().filter(|e| e.is_ok()).count(),
            Batch::Table(t) => t.records().count(),
        }))
    }
}

#[test]
fn bytes_after_the_end_marker_are_counted_the_same_from_every_input() {
    let mut bytes = testing::sample_trace();
    let end = bytes.len() as u64;
    bytes.extend_from_slice(&[0x42; 1000]);
    let inputs: Vec<Box<dyn Next>> = vec![
        Box::new(Decoder::new(&bytes).unwrap()),
        Box::new(Decoder::from_bytes(bytes::Bytes::from(bytes.clone())).unwrap()),
        Box::new(Decoder::from_reader(Dribble::new(&bytes, 13)).unwrap()),
    ];
    for mut d in inputs {
        let err = loop {
            match d.events_of_next() {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("trailing bytes went unnoticed"),
            }
        };
        assert_eq!(err.kind, ErrorKind::TrailingData(1000));
        assert_eq!(err.offset, end);
        assert_eq!(
            err.to_string(),
            format!("at byte {end}: 1000 unexpected bytes after the end marker")
        );
        assert!(d.events_of_next().is_none());
    }
    // From a reader the count stops at MAX_TRAILING_COUNT_BYTES (a lower bound).
    let mut long = testing::sample_trace();
    long.extend(std::iter::repeat_n(0u8, 200_000));
    let mut d = Decoder::from_reader(io::Cursor::new(long)).unwrap();
    let err = std::iter::from_fn(|| d.next_batch().map(|b| b.err()))
        .flatten()
        .next()
        .unwrap();
    assert_eq!(
        err.kind,
        ErrorKind::TrailingData(decode::MAX_TRAILING_COUNT_BYTES)
    );
}

#[test]
fn invalid_utf8_in_names_and_messages_is_shown_lossily() {
    let info = ProcessInfo {
        program: "prog".into(),
        ..Default::default()
    };
    let mut header = file_header(&info);
    // Corrupt the program name's bytes ("prog" at offset 16 + 4 + 8 + 2), then re-seal.
    let at = FILE_HEADER_FIXED_LEN + 14;
    header[at..at + 4].copy_from_slice(b"p\xffg\xc3");
    let sum_at = header.len() - FILE_HEADER_CHECKSUM_LEN;
    let sum = batch_checksum(&[], &header[MAGIC.len()..sum_at]);
    header[sum_at..].copy_from_slice(&sum.to_le_bytes());

    let mut table = Vec::new();
    table.push(REC_STRING);
    varint::push(&mut table, 1);
    varint::push(&mut table, 5);
    table.extend_from_slice(b"db\xe2\x82x");
    table.push(REC_THREAD);
    varint::push(&mut table, 1);
    varint::push(&mut table, 77);
    varint::push(&mut table, 3);
    table.extend_from_slice(b"\xf0\x9fw");
    let mut events = Vec::new();
    varint::push(&mut events, 1);
    varint::push(&mut events, (1 << CODE_BITS) | CODE_LOG as u64);
    varint::push(&mut events, (2 << 1) | 1);
    events.extend_from_slice(b"\xfe!");

    let mut bytes = header;
    bytes.extend_from_slice(&batch_header(
        TAG_TABLE,
        TABLE_FLAG_FULL,
        ThreadId(0),
        0,
        0,
        &table,
    ));
    bytes.extend_from_slice(&table);
    bytes.extend_from_slice(&batch_header(TAG_EVENTS, 0, ThreadId(1), 0, 5, &events));
    bytes.extend_from_slice(&events);
    let mut end = Vec::new();
    varint::push(&mut end, 2);
    bytes.extend_from_slice(&batch_header(TAG_END, 0, ThreadId(0), 0, 0, &end));
    bytes.extend_from_slice(&end);

    let mut d = Decoder::new(&bytes).unwrap();
    assert_eq!(d.process_info().program, "p\u{FFFD}g\u{FFFD}");
    let mut tables = Tables::new();
    let mut inline = None;
    while let Some(b) = d.next_batch() {
        match b.unwrap() {
            Batch::Table(t) => tables.apply(&t).unwrap(),
            Batch::Events(b) => {
                for e in b.events() {
                    if let EventKind::Log {
                        message: Message::Inline(m),
                        ..
                    } = e.unwrap().kind
                    {
                        inline = Some(String::from_utf8_lossy(m).into_owned());
                    }
                }
            }
        }
    }
    // A cut multi-byte sequence is one replacement character, a stray byte another.
    assert_eq!(tables.string(StrId(1)), Some("db\u{FFFD}x"));
    assert_eq!(tables.thread(ThreadId(1)).unwrap().name, "\u{FFFD}w");
    assert_eq!(tables.thread(ThreadId(1)).unwrap().os_tid, 77);
    assert_eq!(inline.as_deref(), Some("\u{FFFD}!"));
}

/// `bytes` with every checksum recomputed, so that damage reaches the parsers behind them.
fn reseal(bytes: &mut [u8]) {
    let info_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let sum_at = FILE_HEADER_FIXED_LEN + info_len;
    if sum_at + FILE_HEADER_CHECKSUM_LEN > bytes.len() {
        return;
    }
    let sum = batch_checksum(&[], &bytes[MAGIC.len()..sum_at]);
    bytes[sum_at..sum_at + 4].copy_from_slice(&sum.to_le_bytes());
    let mut pos = sum_at + 4;
    while pos + BATCH_HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let Some(end) = (pos + BATCH_HEADER_LEN)
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
        else {
            break;
        };
        let sum = batch_checksum(
            &bytes[pos..pos + BATCH_HEADER_CHECKED_LEN],
            &bytes[pos + BATCH_HEADER_LEN..end],
        );
        bytes[pos + BATCH_HEADER_CHECKED_LEN..pos + BATCH_HEADER_LEN]
            .copy_from_slice(&sum.to_le_bytes());
        pos = end;
    }
}

#[test]
fn damage_behind_intact_checksums_is_an_error_or_a_skip_never_a_panic() {
    let clean = testing::every_kind_trace();
    let expected = transcript(Decoder::new(&clean));
    let mut changed = 0;
    for i in 0..clean.len() {
        for v in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            if clean[i] == v {
                continue;
            }
            let mut b = clean.clone();
            b[i] = v;
            reseal(&mut b);
            let got = transcript(Decoder::new(&b));
            // Every input kind sees the same thing, damage or not.
            let from_reader = transcript(Decoder::from_reader(Dribble::new(&b, 5)));
            assert_eq!(got, from_reader, "byte {i} = {v:#x}");
            if got != expected {
                changed += 1;
            }
        }
    }
    assert!(changed > clean.len(), "most single-byte changes must show");
}

/// Batches (as text) and the first error, through `batch_spans` + `batch_at`, keeping what
/// comes before the first error as the sequential decoder does.
fn via_spans(bytes: &[u8]) -> (Vec<String>, Option<DecodeError>) {
    let spans = match decode::batch_spans(bytes) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    for span in spans {
        match span.and_then(|s| decode::batch_at(bytes, s)) {
            Ok(b) => out.push(format!("{:?}", batch_text(&b))),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn via_decoder(bytes: &[u8]) -> (Vec<String>, Option<DecodeError>) {
    let mut d = match Decoder::new(bytes) {
        Ok(d) => d,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    while let Some(b) = d.next_batch() {
        match b {
            Ok(b) => out.push(format!("{:?}", batch_text(&b))),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn batch_text(b: &Batch<'_>) -> Vec<String> {
    match b {
        Batch::Events(b) => std::iter::once(format!("{:?} {} {}", b.thread, b.seq, b.offset))
            .chain(b.events().map(|e| format!("{e:?}")))
            .collect(),
        Batch::Table(t) => std::iter::once(format!("table {} {}", t.full, t.offset))
            .chain(t.records().map(|r| format!("{r:?}")))
            .collect(),
    }
}

#[test]
fn batch_spans_and_batch_at_agree_with_the_decoder_on_whole_cut_and_damaged_traces() {
    let bytes = testing::sample_trace_with(testing::SampleSpec {
        threads: 2,
        events_per_thread: 150,
        batch_bytes: 256,
        ..Default::default()
    });
    let whole = via_decoder(&bytes);
    assert!(whole.1.is_none() && whole.0.len() > 5);
    assert_eq!(via_spans(&bytes), whole);
    for cut in 0..bytes.len() {
        assert_eq!(
            via_spans(&bytes[..cut]),
            via_decoder(&bytes[..cut]),
            "cut {cut}"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert_eq!(via_spans(&b), via_decoder(&b), "flip at {i}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(via_spans(&extra), via_decoder(&extra));
    // A span used on other data is refused, not trusted.
    let span = decode::batch_spans(&bytes)
        .unwrap()
        .nth(1)
        .unwrap()
        .unwrap();
    let other = testing::every_kind_trace();
    assert!(decode::batch_at(&other, span).is_err());
}
