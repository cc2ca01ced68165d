//! Shared by the integration tests: start the recorder, dump the flight recorder, read the
//! dump with the analyzer's streaming API, and ask the analyzer which tasks an OTel trace
//! id selects (what `fdr tasks --otel-trace-id` does).
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a test helper module")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use fdr_analyzer::{EventCx, ProfileOptions, ReadOptions, Visitor, profile_slice, read_slice};
use fdr_format::{EventKind, Message};
use fdr_recorder::{Config, FlightConfig};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpListener;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the tests of one binary one at a time (they share the global recorder) and starts
/// the recorder.
pub fn serial() -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 8 << 20,
        }),
        ..Config::default()
    })
    .expect("recorder starts");
    g
}

/// The flight recorder's window.
pub fn dump() -> Vec<u8> {
    let mut bytes = Vec::new();
    fdr_recorder::flight()
        .write_to(&mut bytes)
        .expect("snapshot");
    bytes
}

/// A task as the trace says it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub parent: u64,
    pub name: String,
    /// An async task (`TaskCreate`), not a user task.
    pub is_async: bool,
    /// An async task's spawn site, `file:line`.
    pub site: String,
}

/// What the tests look at in a dump.
#[derive(Debug, Default)]
pub struct Trace {
    pub tasks: BTreeMap<u64, Task>,
    /// (task, trace id, span id), in order.
    pub links: Vec<(u64, [u8; 16], [u8; 8])>,
    /// Poll starts and ready poll ends per task.
    pub polls: BTreeMap<u64, (u64, u64)>,
    /// Regions begun, with the task current then.
    pub regions: Vec<(u64, String)>,
    /// Logs, with the task current then: (task, category, message).
    pub logs: Vec<(u64, String, String)>,
}

impl Visitor for Trace {
    fn event(&mut self, cx: &EventCx<'_>) {
        let name = |id| cx.tables.name(id).into_owned();
        match cx.kind {
            EventKind::TaskCreate {
                task,
                parent,
                name: n,
                site,
            } => {
                let site = cx
                    .tables
                    .site(site)
                    .map(|s| format!("{}:{}", s.file, s.line))
                    .unwrap_or_default();
                self.tasks.insert(
                    task.0,
                    Task {
                        parent: parent.0,
                        name: name(n),
                        is_async: true,
                        site,
                    },
                );
            }
            EventKind::UserTaskBegin {
                task,
                parent,
                name: n,
            } => {
                self.tasks.insert(
                    task.0,
                    Task {
                        parent: parent.0,
                        name: name(n),
                        is_async: false,
                        site: String::new(),
                    },
                );
            }
            EventKind::OtelLink {
                task,
                trace_id,
                span_id,
            } => self.links.push((task.0, trace_id, span_id)),
            EventKind::PollStart { task } => self.polls.entry(task.0).or_default().0 += 1,
            EventKind::PollEnd { task, ready: true } => {
                self.polls.entry(task.0).or_default().1 += 1
            }
            EventKind::RegionBegin { name: n } => self.regions.push((cx.task.0, name(n))),
            EventKind::Log { category, message } => {
                let m = match message {
                    Message::Interned(id) => name(id),
                    Message::Inline(t) => String::from_utf8_lossy(t).into_owned(),
                };
                self.logs.push((cx.task.0, name(category), m));
            }
            _ => {}
        }
    }
}

impl Trace {
    /// Reads a dump, failing on any damage.
    pub fn read(bytes: &[u8]) -> Trace {
        let mut t = Trace::default();
        let out = read_slice(bytes, &mut t, ReadOptions::default()).expect("readable trace");
        assert!(out.error.is_none(), "damaged trace: {:?}", out.error);
        t
    }

    /// The ids of the tasks named `name`.
    pub fn named(&self, name: &str) -> Vec<u64> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.name == name)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The one task named `name` (panics unless exactly one).
    pub fn one(&self, name: &str) -> u64 {
        let ids = self.named(name);
        assert_eq!(
            ids.len(),
            1,
            "tasks named {name:?}: {ids:?}; all: {:?}",
            self.tasks
        );
        ids[0]
    }

    /// The links recorded for `task`.
    pub fn links_of(&self, task: u64) -> Vec<([u8; 16], [u8; 8])> {
        self.links
            .iter()
            .filter(|l| l.0 == task)
            .map(|l| (l.1, l.2))
            .collect()
    }
}

/// The task names the analyzer keeps when filtering by OTel trace id (as
/// `fdr tasks --otel-trace-id ID` does).
pub fn tasks_for_trace(bytes: &[u8], trace_id: [u8; 16]) -> BTreeSet<String> {
    let (p, out) = profile_slice(
        bytes,
        ProfileOptions {
            otel_trace_id: Some(trace_id),
            ..ProfileOptions::default()
        },
    )
    .expect("profile");
    assert!(out.error.is_none());
    p.tasks
        .keys()
        .map(|(_, n)| p.name(*n).into_owned())
        .collect()
}

/// A tokio runtime with two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `service` on an ephemeral loopback port until the returned handle is aborted.
pub async fn serve<S, B>(service: S) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accept)
}
