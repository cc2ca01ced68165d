//! Decodes a dump into every thread's events with names and sites resolved, for the task,
//! lock and tokio tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a test helper module")]

use std::collections::BTreeMap;
use std::time::Duration;

use fdr_recorder::{Config, FlightConfig};

pub use crate::common::Ev;
use crate::common::owned;

/// A decoded dump: events per thread (by name), in order.
#[derive(Debug, Default)]
pub struct Dump {
    pub threads: BTreeMap<u32, (String, Vec<Ev>)>,
    /// Every event of every thread, by timestamp.
    pub timeline: Vec<(u64, Ev)>,
}

impl Dump {
    /// Every event with its thread's name.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Ev)> {
        self.threads
            .values()
            .flat_map(|(n, evs)| evs.iter().map(move |e| (n.as_str(), e)))
    }

    /// The id of the task created with `name` (panics unless exactly one).
    pub fn task(&self, name: &str) -> u64 {
        let ids: Vec<u64> = self
            .all()
            .filter_map(|(_, e)| match e {
                Ev::Create { task, name: n, .. } if n == name => Some(*task),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1, "tasks named {name}: {ids:?}");
        ids[0]
    }

    /// The events of the thread that recorded `pred`'s first match.
    pub fn thread_with(&self, pred: impl Fn(&Ev) -> bool) -> Option<(&str, &[Ev])> {
        self.threads
            .values()
            .find(|(_, evs)| evs.iter().any(&pred))
            .map(|(n, evs)| (n.as_str(), evs.as_slice()))
    }
}

/// Decodes a whole trace, panicking with the decoder's message on any damage.
pub fn decode(bytes: &[u8]) -> Dump {
    let trace = fdr_test_support::trace::decode(bytes);
    let mut raw: BTreeMap<u32, Vec<Ev>> = BTreeMap::new();
    let mut timeline = Vec::new();
    for r in &trace.events {
        let Some(ev) = owned(r.event.kind, &trace.tables) else {
            continue;
        };
        timeline.push((r.event.ts, ev.clone()));
        raw.entry(r.thread.0).or_default().push(ev);
    }
    timeline.sort_by_key(|(ts, _)| *ts);
    let mut out = Dump {
        timeline,
        ..Dump::default()
    };
    for (id, evs) in raw {
        let name = trace.thread_name(fdr_format::ThreadId(id)).into_owned();
        out.threads.insert(id, (name, evs));
    }
    out
}

/// Starts the recorder with a flight window large enough for a test.
pub fn start_recorder() {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 8 << 20,
        }),
        ..Config::default()
    })
    .expect("recorder starts");
}

/// The flight recorder's window, decoded.
pub fn dump() -> Dump {
    let mut bytes = Vec::new();
    fdr_recorder::flight()
        .write_to(&mut bytes)
        .expect("snapshot");
    decode(&bytes)
}

/// `file:line` of the caller, as sites are resolved.
#[track_caller]
pub fn here() -> String {
    let l = std::panic::Location::caller();
    format!("{}:{}", l.file(), l.line())
}
