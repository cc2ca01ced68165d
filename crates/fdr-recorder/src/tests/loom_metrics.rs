//! Loom model of a thread's metric cells: a metrics read racing the polls that fold the
//! thread's pending poll samples.

use loom::sync::Arc;
use loom::thread;

use crate::metric_cells::{COUNTERS, HISTOGRAMS, Hist, HistogramTicks, ThreadMetrics};

/// Reads a thread's poll-duration histogram as `metrics()` does.
fn read_poll_durations(cells: &ThreadMetrics) -> HistogramTicks {
    let mut hists: Vec<HistogramTicks> = (0..HISTOGRAMS).map(|_| HistogramTicks::new()).collect();
    let mut counters = [0; COUNTERS];
    cells.add_to(&mut hists, &mut counters);
    hists.swap_remove(Hist::PollDuration as usize)
}

/// A poll's samples wait as pending until the next poll folds them in: a read racing the
/// polls never counts a sample twice (once folded and once pending), and after the polls
/// it counts each exactly once. (Values below 8 have a bucket each.)
#[test]
fn pending_poll_samples_versus_a_read() {
    let mut model = loom::model::Builder::new();
    // Reading a thread's cells is some 1,500 atomic loads, each a scheduling point.
    model.max_branches = 100_000;
    model.check(|| {
        // A thread's cells are some 1,500 atomics: build and read them on a thread with room.
        let reader = thread::Builder::new().stack_size(32 << 20);
        let reader = reader.spawn(|| {
            let cells = Arc::new(ThreadMetrics::new());
            let c2 = cells.clone();
            let poller = thread::spawn(move || {
                for duration in 1..=3 {
                    c2.poll(None, duration);
                }
            });
            let during = read_poll_durations(&cells);
            for d in 1..=3 {
                assert!(during.buckets[d] <= 1, "sample {d} counted twice");
            }
            assert!(during.count <= 3);
            poller.join().unwrap();
            let after = read_poll_durations(&cells);
            assert_eq!(after.buckets[1..=3], [1, 1, 1]);
            assert_eq!(after.count, 3);
        });
        reader.unwrap().join().unwrap();
    });
}
