//! The control calls with the `record` feature: fdr-recorder's, each error reported as the
//! facade's opaque [`Error`](crate::Error). The recording calls are re-exported as they are
//! (they never fail).

use std::io::Write;

use crate::{Config, Error, FlightConfig, MetricSource, Stats};

/// Starts the process's recorder: calibrates the clock (about 20 ms, once), starts the
/// collector thread (once), and the flight recorder if configured. Calling it again
/// applies the new configuration. A configuration that cannot work is refused
/// ([`Error::is_config`]) and nothing changes.
pub fn start(config: Config) -> Result<Recorder, Error> {
    Ok(Recorder(fdr_recorder::start(config)?))
}

/// A handle to the process's recorder.
#[derive(Debug, Clone, Copy)]
pub struct Recorder(fdr_recorder::Recorder);

impl Recorder {
    /// The flight recorder.
    pub fn flight(&self) -> FlightRecorder {
        FlightRecorder(self.0.flight())
    }

    /// The recorder's counters.
    pub fn stats(&self) -> Stats {
        self.0.stats()
    }

    /// Stops recording (see [`stop`](crate::stop)).
    pub fn stop(&self) {
        self.0.stop()
    }
}

/// The flight recorder: the process's window of recent events.
pub fn flight() -> FlightRecorder {
    FlightRecorder(fdr_recorder::flight())
}

/// The flight recorder: a bounded window of recent events, written out on demand.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlightRecorder(fdr_recorder::FlightRecorder);

impl FlightRecorder {
    /// Starts keeping a window of recent events (the recorder must be started). Restarting
    /// with a new configuration empties the ring (its chunks are counted as aged out).
    pub fn start(&self, config: FlightConfig) -> Result<(), Error> {
        Ok(self.0.start(config)?)
    }

    /// Stops keeping new events; the window kept so far can still be written.
    pub fn stop(&self) {
        self.0.stop()
    }

    /// Whether the flight recorder is keeping events.
    pub fn enabled(&self) -> bool {
        self.0.enabled()
    }

    /// The active configuration.
    pub fn config(&self) -> Option<FlightConfig> {
        self.0.config()
    }

    /// Writes the window as a trace that decodes on its own; writers keep recording and the
    /// ring is not cleared. Returns the bytes written. Up to
    /// [`MAX_SNAPSHOTS`](fdr_recorder::MAX_SNAPSHOTS) snapshots run side by side; one more
    /// is refused at once ([`Error::is_snapshot_in_progress`]). A slow `out` never holds
    /// memory the writers need.
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<u64, Error> {
        Ok(self.0.write_to(out)?)
    }

    /// Writes the window as [`FlightRecorder::write_to`] does, for an incident: it runs
    /// beside every other snapshot and is never refused because of `write_to` calls, only
    /// when [`MAX_INCIDENT_SNAPSHOTS`](fdr_recorder::MAX_INCIDENT_SNAPSHOTS) incident
    /// snapshots are being written at once.
    pub fn write_incident_to<W: Write>(&self, out: &mut W) -> Result<u64, Error> {
        Ok(self.0.write_incident_to(out)?)
    }
}

/// Starts streaming every event into `writer`, on the capture's own thread, alongside the
/// flight recorder. One capture at a time: a second is refused
/// ([`Error::is_capture_in_progress`]). A writer slower than the events never slows the
/// recorder: the capture drops what it cannot keep up with and counts it.
pub fn capture<W: Write + Send + 'static>(writer: W) -> Result<CaptureGuard<W>, Error> {
    Ok(CaptureGuard(fdr_recorder::capture(writer)?))
}

/// A running capture; [`CaptureGuard::stop`] ends it and returns the writer (dropping the
/// guard ends it too).
#[derive(Debug)]
pub struct CaptureGuard<W>(fdr_recorder::CaptureGuard<W>);

impl<W: 'static> CaptureGuard<W> {
    /// Stops the capture: its thread writes what is queued and the committed part of every
    /// live thread's chunk, then the end marker. Returns the writer.
    pub fn stop(self) -> Result<W, Error> {
        Ok(self.0.stop()?)
    }
}

/// Registers an application value that the metrics thread records into the trace every
/// `Config::metrics_interval` (its name is normalized to a Prometheus name; at most 256
/// are registered). The value is read on that thread, never on a recording thread.
pub fn register_metric(
    name: &str,
    read: impl Fn() -> f64 + Send + Sync + 'static,
) -> Result<MetricSource, Error> {
    Ok(fdr_recorder::register_metric(name, read)?)
}

/// The tokio runtime watcher's entry points, with the facade's error.
#[cfg(all(feature = "tokio", target_has_atomic = "64"))]
pub(crate) mod tokio {
    use std::time::Duration;

    use fdr_recorder::tokio_watch::RuntimeWatch;
    use tokio::runtime::Handle;

    use crate::Error;

    /// Watches `handle`'s runtime every
    /// [`DEFAULT_WATCH_INTERVAL`](crate::tokio::DEFAULT_WATCH_INTERVAL): a thread of fdr's
    /// own records its workers' busy time, parks, queue depth and alive tasks as metric
    /// samples. Call it once per runtime; inside `#[tokio::main]`,
    /// `let _watch = fdr::tokio::watch(Handle::current())?;`. Fails only if the watcher
    /// thread cannot be started ([`Error::is_spawn`]).
    ///
    /// It cannot hook the workers' parks (tokio takes those hooks only at the runtime's
    /// build), so the dump has no per-wake evidence of the host's wait for a CPU and
    /// `fdr diagnose` says so; a runtime built with
    /// [`instrument`](crate::tokio::instrument) has it.
    pub fn watch(handle: Handle) -> Result<RuntimeWatch, Error> {
        Ok(fdr_recorder::tokio_watch::watch(handle)?)
    }

    /// Watches `handle`'s runtime every `interval` (at least
    /// [`MIN_WATCH_INTERVAL`](crate::tokio::MIN_WATCH_INTERVAL)).
    pub fn watch_every(handle: Handle, interval: Duration) -> Result<RuntimeWatch, Error> {
        Ok(fdr_recorder::tokio_watch::watch_every(handle, interval)?)
    }
}
