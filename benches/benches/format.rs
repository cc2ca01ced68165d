//! Format benches: decode throughput, encode cost, and density of a realistic mix.
//!
//! Figures: `format.decode.events_per_sec`, `format.decode.bytes_per_sec`,
//! `format.encode.ns_per_event`, `format.bytes_per_event.mix`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fdr_benches::report;
use fdr_format::testing::{SampleSpec, sample_trace_with};
use fdr_format::{Batch, Decoder, EventKind};

/// A ~64 KiB-chunk trace of the request mix with 1 us spacing (as a busy service records it).
fn mix_trace() -> Vec<u8> {
    sample_trace_with(SampleSpec {
        threads: 4,
        events_per_thread: 1_000_000,
        batch_bytes: 64 * 1024,
        spacing_ticks: 2_600,
        seed: 7,
    })
}

/// Decodes every event of `bytes`, returning the event count (and a checksum of timestamps
/// so the work cannot be optimised away).
fn decode_all(bytes: &[u8]) -> (u64, u64) {
    let mut d = Decoder::new(bytes).expect("valid trace");
    let (mut n, mut sum) = (0u64, 0u64);
    while let Some(b) = d.next_batch() {
        if let Batch::Events(b) = b.expect("valid batch") {
            for e in b.events() {
                let e = e.expect("valid event");
                sum = sum.wrapping_add(e.ts);
                if let EventKind::RegionBegin { name } = e.kind {
                    sum ^= name.0 as u64;
                }
                n += 1;
            }
        }
    }
    (n, sum)
}

fn bench(c: &mut Criterion) {
    let trace = mix_trace();
    let (events, _) = decode_all(&trace);
    report(
        "format.bytes_per_event.mix",
        trace.len() as f64 / events as f64,
    );

    let mut g = c.benchmark_group("format");
    g.throughput(Throughput::Elements(events));
    g.sample_size(10);
    g.bench_function("decode_trace_ns", |b| {
        b.iter(|| black_box(decode_all(black_box(&trace))))
    });
    g.finish();

    // The throughput figures, from a direct best-of-5 timing in this same run.
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            black_box(decode_all(black_box(&trace)));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    report("format.decode.events_per_sec", events as f64 / best);
    report("format.decode.bytes_per_sec", trace.len() as f64 / best);

    // Encoding: the general encoder over a caller's buffer, region begin/end pairs.
    let mut buf = vec![0u8; 64 * 1024];
    let per = 2_000u64;
    let mut g = c.benchmark_group("format");
    g.bench_function("encode_region_pair", |b| {
        b.iter(|| {
            let mut enc = fdr_format::BatchEncoder::new(&mut buf, 0);
            let mut ts = 0;
            for i in 0..per {
                ts += 40;
                let name = fdr_format::StrId((i % 20) as u32);
                let _ = enc.push(ts, &EventKind::RegionBegin { name });
                ts += 40;
                let _ = enc.push(ts, &EventKind::RegionEnd { name });
            }
            black_box(enc.len())
        })
    });
    g.finish();
    let t = Instant::now();
    let rounds = 2_000u64;
    for _ in 0..rounds {
        let mut enc = fdr_format::BatchEncoder::new(&mut buf, 0);
        let mut ts = 0;
        for i in 0..per {
            ts += 40;
            let name = fdr_format::StrId((i % 20) as u32);
            let _ = enc.push(black_box(ts), &EventKind::RegionBegin { name });
            ts += 40;
            let _ = enc.push(black_box(ts), &EventKind::RegionEnd { name });
        }
        black_box(enc.len());
    }
    report(
        "format.encode.ns_per_event",
        t.elapsed().as_nanos() as f64 / (rounds * per * 2) as f64,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
