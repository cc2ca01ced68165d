//! The recording API when the `record` feature is on: fdr-recorder's.

pub use fdr_recorder::{
    CaptureGuard, Config, Error, FlightConfig, FlightRecorder, Recorder, RegionGuard, Stats,
    TaskGuard, capture, enabled, flight, is_running, log, log_fmt, region, start, stats, stop,
    task, with_region,
};
