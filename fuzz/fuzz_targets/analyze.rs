//! Fuzz target: the analyzer over arbitrary bytes, not only the decoder.
//!
//! Each input runs through everything `fdr` does with a trace: the profile (with the
//! report's timeline), the diagnosis, every text and JSON view, the HTML report, a diff
//! of the trace with itself, the parallel summary, `cat`, and both exports (chrome-json
//! and Perfetto). The profile, `cat` and the chrome-json export share one read (their
//! options are the same); each of the others reads the input itself. An input that stops at a checksum mismatch is analyzed with its
//! checksums recomputed, so mutations reach the event and record parsers; the damaged
//! input itself only through the profile (which must stop at the damage).
//!
//! Bounds: libFuzzer's `-timeout` caps the time per input (`cargo xtask fuzz --target
//! analyze` passes 10 s); a counting global allocator caps the live heap at
//! `HEAP_LIMIT_BYTES` whatever the input (the analyzer's memory is bounded by its limits,
//! not by the input), and aborts past it, which libFuzzer reports as a crash.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use fdr_analyzer::cat::Cat;
use fdr_analyzer::chrome::ChromeExport;
use fdr_analyzer::perfetto::PerfettoExport;
use fdr_analyzer::{
    Profile, ProfileOptions, ReadOptions, SummaryOptions, diagnose, diff, profile_slice,
    read_slice, report, summarize_slice, views,
};
use fdr_format::checksum::batch_checksum;
use fdr_format::wire::{
    BATCH_HEADER_CHECKED_LEN, BATCH_HEADER_LEN, FILE_HEADER_CHECKSUM_LEN, FILE_HEADER_FIXED_LEN,
    MAGIC,
};
use fdr_format::{Decoder, ErrorKind};
use libfuzzer_sys::fuzz_target;

/// Live heap the analysis of one input may hold at most.
const HEAP_LIMIT_BYTES: usize = 192 << 20;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(n: usize) {
    let live = LIVE_BYTES.fetch_add(n, Relaxed) + n;
    if live > HEAP_LIMIT_BYTES {
        eprintln!("analyze: live heap {live} bytes, over the {HEAP_LIMIT_BYTES}-byte limit");
        std::process::abort();
    }
}

fn shrank(n: usize) {
    LIVE_BYTES.fetch_sub(n, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and
// only updates counters; it upholds `GlobalAlloc`'s contract exactly as `System` does.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            shrank(new_size);
        } else {
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The input with its file-header and batch checksums recomputed, where the framing allows.
fn repair_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.len() < FILE_HEADER_FIXED_LEN || out[..MAGIC.len()] != MAGIC {
        return out;
    }
    let info_len = u32::from_le_bytes(out[12..16].try_into().unwrap()) as usize;
    let sum_at = FILE_HEADER_FIXED_LEN + info_len;
    let Some(sum_end) = sum_at.checked_add(FILE_HEADER_CHECKSUM_LEN) else {
        return out;
    };
    if sum_end > out.len() {
        return out;
    }
    let sum = batch_checksum(&[], &out[MAGIC.len()..sum_at]);
    out[sum_at..sum_end].copy_from_slice(&sum.to_le_bytes());
    let mut pos = sum_end;
    while pos + BATCH_HEADER_LEN <= out.len() {
        let len = u32::from_le_bytes(out[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = pos + BATCH_HEADER_LEN + len;
        if end > out.len() {
            break;
        }
        let sum = batch_checksum(
            &out[pos..pos + BATCH_HEADER_CHECKED_LEN],
            &out[pos + BATCH_HEADER_LEN..end],
        );
        out[pos + BATCH_HEADER_CHECKED_LEN..pos + BATCH_HEADER_LEN]
            .copy_from_slice(&sum.to_le_bytes());
        pos = end;
    }
    out
}

/// Whether decoding `data` stops at a checksum mismatch.
fn stops_at_checksum(data: &[u8]) -> bool {
    let Ok(mut d) = Decoder::new(data) else {
        return matches!(
            Decoder::new(data).err().map(|e| e.kind),
            Some(ErrorKind::Checksum { .. })
        );
    };
    while let Some(b) = d.next_batch() {
        if let Err(e) = b {
            return matches!(e.kind, ErrorKind::Checksum { .. });
        }
    }
    false
}

fn analyze(data: &[u8]) {
    let opts = ProfileOptions {
        timeline_slices: 256,
        top: 5,
        ..ProfileOptions::default()
    };
    // The profile, `cat` and the chrome-json export read with the same options: one read
    // delivers every event to each of them, as three commands' reads would, without
    // decoding the input three times.
    let mut one_read = (
        Profile::new(opts),
        (
            Cat::new(std::io::sink(), 1_000),
            ChromeExport::new(std::io::sink()),
        ),
    );
    let read = read_slice(data, &mut one_read, ReadOptions::default());
    let (p, (_, chrome)) = one_read;
    assert!(chrome.error.is_none());
    if let Ok(out) = read {
        assert_eq!(p.read, out.stats);
        let d = diagnose(&p);
        let _ = (d.to_text(), d.to_json());
        let _ = (
            views::tasks_text(&p),
            views::tasks_json(&p),
            views::regions_text(&p),
            views::regions_json(&p),
            views::blocking_text(&p, 10),
            views::blocking_json(&p, 10),
            views::sched_text(&p),
            views::sched_json(&p),
        );
        if let Ok((r, _)) = report::Report::from_slice(data, None) {
            let html = r.render("fuzz");
            assert!(html.ends_with("</html>\n"));
        }
        if let Ok((side, _)) = diff::DiffSideSet::of_slice(data) {
            let d = diff::compare(side.clone(), side);
            assert!(
                d.phases
                    .iter()
                    .all(|r| r.delta_ns().is_none_or(|x| x == 0.0))
            );
            let _ = (d.to_text(10), d.to_json(10));
        }
    }
    if let Ok(s) = summarize_slice(
        data,
        SummaryOptions {
            threads: 2,
            progress: None,
        },
    ) {
        let _ = (s.to_text(), s.to_json());
    }
    let mut x = PerfettoExport::new(std::io::sink());
    // A small window: batches arrive late and out of order.
    let _ = read_slice(
        data,
        &mut x,
        ReadOptions {
            window_bytes: 64,
            progress: None,
        },
    );
    assert!(x.error.is_none());
}

/// An input that stops at a checksum mismatch: reading keeps what came before and says
/// where it stopped (the decoder target covers the rest of that path).
fn stops_cleanly(data: &[u8]) {
    if let Ok((p, out)) = profile_slice(data, ProfileOptions::default()) {
        assert!(out.error.is_some());
        assert_eq!(p.read, out.stats);
    }
}

fuzz_target!(|data: &[u8]| {
    // Most mutations break a checksum: the full analysis runs once, on the input with
    // its checksums recomputed (so mutations reach the event and record parsers), not
    // also on the prefix before the damage.
    if stops_at_checksum(data) {
        stops_cleanly(data);
        analyze(&repair_checksums(data));
    } else {
        analyze(data);
    }
});
