//! Writes a hostile trace: `cargo run --release -p fdr-test-support --example write_adversarial
//! -- SHAPE MIB OUT.fdr` (SHAPE: threads, tasks, names, open_spans, long_strings,
//! big_batches, extremes).

use std::io::{BufWriter, Write};

use fdr_test_support::adversarial::{Shape, write};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: write_adversarial SHAPE MIB OUT.fdr";
    let shape = Shape::ALL
        .into_iter()
        .find(|s| Some(s.name()) == args.first().map(String::as_str))
        .expect(usage);
    let mib: u64 = args.get(1).and_then(|m| m.parse().ok()).expect(usage);
    let out = std::fs::File::create(args.get(2).expect(usage))?;
    let mut w = write(shape, BufWriter::new(out), mib << 20)?;
    w.flush()
}
