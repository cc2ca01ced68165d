//! Aging is not loss: events the flight ring drops by design (its oldest chunks, to stay
//! within `max_bytes`) are counted as aged out, apart from the events the recorder lost,
//! in `stats()` and in the exported metrics; the trace keeps the reason of each loss
//! record. (Own test binary: it installs the global recorder.)

mod common;

use std::time::Duration;

use common::decode;
use fdr_format::LossReason;
use fdr_recorder::{Config, FlightConfig, LOSS_REASONS, Scalar};

fn scalar(all: &[Scalar], name: &str) -> Scalar {
    *all.iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scalar {name}: {all:?}"))
}

#[test]
fn ring_aging_is_counted_apart_from_loss() {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(3600),
            max_bytes: 1 << 20,
        }),
        ..Config::default()
    })
    .unwrap();
    // Two threads record about 8 MiB into a 1 MiB ring: most of it ages out.
    let workers: Vec<_> = (0..2)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("aging-{i}"))
                .spawn(|| {
                    for n in 0..1_000_000u32 {
                        fdr_recorder::with_region("aging", || ());
                        if n % 1000 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump).unwrap();
    let d = decode(&dump);

    let stats = fdr_recorder::stats();
    assert!(
        stats.aged_out_events() > 1_000_000,
        "the ring wrapped: {stats:?}"
    );
    assert_eq!(stats.aged_out.events, stats.aged_out_events());
    assert!(!LOSS_REASONS.contains(&LossReason::RingOverwrite));
    // Nothing but a writer short of a free chunk can lose events here (no capture, no
    // oversize event): whatever it discarded is all that counts as lost.
    let discarded = stats.lost_for(LossReason::PoolExhausted);
    assert_eq!(stats.lost_events(), discarded.events, "{stats:?}");
    assert_eq!(stats.lost_bytes(), discarded.bytes, "{stats:?}");
    assert_eq!(
        stats.lost_for(LossReason::RingOverwrite).events,
        0,
        "ring overwrite is not a loss"
    );

    // The exported figures, as the sentinel and the admin endpoint read them.
    let m = fdr_recorder::metrics();
    let all = m.scalars();
    let aged = scalar(&all, "recorder_aged_out_events");
    assert!(!aged.gauge && !aged.help.is_empty());
    assert!(aged.value >= stats.aged_out_events());
    let aged_bytes = scalar(&all, "recorder_aged_out_bytes");
    assert!(aged_bytes.value >= stats.aged_out.bytes && aged_bytes.value > 0);
    let lost = scalar(&all, "recorder_lost_events");
    assert!(
        !lost.gauge && lost.help.contains("not lost"),
        "{}",
        lost.help
    );
    let now = fdr_recorder::stats();
    assert_eq!(
        lost.value,
        m.recorder.lost_for(LossReason::PoolExhausted).events,
        "lost events are the writers' discards only, not the {} aged out",
        now.aged_out_events()
    );
    assert_eq!(
        scalar(&all, "recorder_lost_bytes").value,
        m.recorder.lost_bytes()
    );

    // The trace keeps each record's reason: the chunks that left the window are
    // ring-overwrite records.
    let ring = d.lost_for(LossReason::RingOverwrite);
    assert!(ring > 0, "{:?}", d.losses);
    assert!(ring <= now.aged_out_events());
}
