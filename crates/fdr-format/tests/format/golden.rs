//! The wire bytes of the every-kind trace (`testing::every_kind_trace`: every event kind and
//! table record, an inline log, a sized kind and record from a newer minor version), pinned
//! in `tests/golden/every_kind_trace.hex`. Round trips only show that the encoder and the
//! decoder agree; this fails on any change of the bytes either writes or reads, so a change
//! of the encoding is a decision, made with the format's version in mind (docs/FORMAT.md).
//!
//! After an intended change: `UPDATE_EXPECT=1 cargo test -p fdr-format --test format golden::`
//! rewrites the file; review its diff (offsets are per line, so a moved byte shows where).

use expect_test::expect_file;
use fdr_format::testing::every_kind_trace;
use fdr_format::{Batch, Decoder};

/// A hex dump: offset, 16 bytes, and their printable ASCII.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = line
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<47}  |{text}|\n",
            i * 16,
            hex.join(" ")
        ));
    }
    out
}

/// The bytes back from a dump (the hex columns of each line).
fn parse_dump(text: &str) -> Vec<u8> {
    text.lines()
        .flat_map(|l| {
            let hex = l
                .get(10..57)
                .unwrap_or_else(|| panic!("not a dump line: {l:?}"));
            hex.split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).expect("a hex byte"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_kind_trace_bytes_are_pinned() {
    let bytes = every_kind_trace();
    let dump = hex_dump(&bytes);
    assert_eq!(parse_dump(&dump), bytes, "the dump reads back");
    expect_file!["../golden/every_kind_trace.hex"].assert_eq(&dump);
}

/// The pinned bytes are a whole trace today's decoder reads to the end marker: a golden
/// file blessed from a broken encoder would fail here.
#[test]
fn the_pinned_trace_decodes_whole() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/every_kind_trace.hex"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let bytes = parse_dump(&text);
    let mut d = Decoder::new(&bytes).expect("a file header");
    let (mut tables, mut events) = (0, 0);
    while let Some(batch) = d.next_batch() {
        match batch.expect("whole batches") {
            Batch::Table(_) => tables += 1,
            Batch::Events(b) => {
                for e in b.events() {
                    e.expect("an event");
                    events += 1;
                }
            }
        }
    }
    assert_eq!(tables, 1);
    assert!(events > 20, "only {events} events");
}
