//! The process identity in the file header across minor versions: minor 2's fields (service,
//! process start, fdr version, build id) round-trip, a minor-1 header (without them) still
//! reads with them empty, a newer minor's additions after them are ignored, and a block cut
//! inside them is refused.

use fdr_format::checksum::batch_checksum;
use fdr_format::encode::file_header;
use fdr_format::wire::*;
use fdr_format::*;

fn identity() -> ProcessInfo {
    ProcessInfo {
        pid: 4321,
        start_unix_ns: 1_800_000_000_000_000_000,
        program: "checkout".into(),
        service_version: "42.1".into(),
        host: "web-7".into(),
        service: "checkout-api".into(),
        process_start_unix_ns: 1_799_999_990_000_000_000,
        fdr_version: "0.1.0".into(),
        build_id: "9f86d081884c7d65".into(),
    }
}

/// A whole trace (no batches, the end marker) with `body` as its process-info block.
fn trace_with_info(minor: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    out.extend_from_slice(&minor.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let sum = batch_checksum(&[], &out[MAGIC.len()..]);
    out.extend_from_slice(&sum.to_le_bytes());
    let w = TraceWriter::new(Vec::new(), &ProcessInfo::default())
        .unwrap()
        .finish()
        .unwrap();
    // The end marker of an empty trace, after its own header.
    out.extend_from_slice(&w[file_header(&ProcessInfo::default()).len()..]);
    out
}

fn info_block(info: &ProcessInfo) -> Vec<u8> {
    let h = file_header(info);
    h[FILE_HEADER_FIXED_LEN..h.len() - FILE_HEADER_CHECKSUM_LEN].to_vec()
}

#[test]
fn every_identity_field_round_trips() {
    let info = identity();
    let bytes = TraceWriter::new(Vec::new(), &info)
        .unwrap()
        .finish()
        .unwrap();
    let d = Decoder::new(&bytes).unwrap();
    assert_eq!(d.process_info(), &info);
}

#[test]
fn a_minor_1_header_reads_with_an_empty_identity() {
    let full = identity();
    // Minor 1 wrote pid, start, program, service version and host, and nothing after.
    let mut body = Vec::new();
    body.extend_from_slice(&full.pid.to_le_bytes());
    body.extend_from_slice(&full.start_unix_ns.to_le_bytes());
    for s in [&full.program, &full.service_version, &full.host] {
        body.extend_from_slice(&(s.len() as u16).to_le_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    let bytes = trace_with_info(1, &body);
    let d = Decoder::new(&bytes).unwrap();
    assert_eq!(
        d.process_info(),
        &ProcessInfo {
            service: String::new(),
            process_start_unix_ns: 0,
            fdr_version: String::new(),
            build_id: String::new(),
            ..full
        }
    );
}

#[test]
fn a_newer_minors_additions_after_the_identity_are_ignored() {
    let info = identity();
    let mut body = info_block(&info);
    body.extend_from_slice(b"\x05\x00later");
    let bytes = trace_with_info(VERSION_MINOR + 1, &body);
    let d = Decoder::new(&bytes).unwrap();
    assert_eq!(d.process_info(), &info);
}

#[test]
fn a_block_cut_inside_the_identity_is_refused() {
    let body = info_block(&identity());
    // Cut in the middle of the process start (after the service name).
    let service_end = 4 + 8 + [8, 4, 5].iter().map(|n| 2 + n).sum::<usize>() + 2 + 12;
    for cut in [service_end + 3, body.len() - 1] {
        let bytes = trace_with_info(VERSION_MINOR, &body[..cut]);
        let err = Decoder::new(&bytes).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::BadHeader("process-info block is malformed"),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_minor_1_trace_decodes_whole_with_an_empty_identity() {
    let new = testing::every_kind_trace();
    let old = testing::every_kind_trace_minor_1();
    let d = Decoder::new(&old).unwrap();
    assert_eq!(d.version_minor(), 1);
    let info = d.process_info().clone();
    assert_eq!((info.pid, info.host.as_str()), (7, "h"));
    assert_eq!((info.service.as_str(), info.build_id.as_str()), ("", ""));
    // The same batches as the minor-2 trace, read to the end marker.
    let batches = |bytes: &[u8]| {
        let mut d = Decoder::new(bytes).unwrap();
        let mut n = 0;
        while let Some(b) = d.next_batch() {
            b.unwrap();
            n += 1;
        }
        n
    };
    assert_eq!(batches(&old), batches(&new));
}
