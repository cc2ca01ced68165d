//! A user-profile service on axum, with fdr wired in the way README.md and docs/OPERATIONS.md
//! tell an application to: each request an fdr task named by its axum route and tied to its
//! OpenTelemetry span, its phases as regions, its cache behind an [`fdr::sync::Mutex`], its
//! `tracing` spans and events recorded by [`fdr::tracing::FdrLayer`], its latency in a
//! `prometheus` histogram that the sentinel watches.
//!
//! `GET /user/{id}` reads a profile through a small cache (a miss asks the profile store, a
//! downstream service, asynchronously) and renders it. `GET /debug/spans` lists the newest
//! OpenTelemetry spans exported, with the fdr task of each.
//!
//! A fault can be switched on ([`Fault`]): the cache then reloads its hot entries from the
//! store with a synchronous call while it holds the cache lock, so requests queue behind the
//! lock and the workers block. The binary (`src/main.rs`) sets everything up; `src/bin/load.rs`
//! drives it; docs/OPERATIONS.md walks through a run.

#![forbid(unsafe_code)]

pub mod telemetry;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use fdr::FdrFutureExt;

/// Entries in the profile cache (direct-mapped: profile `id` lives in slot `id % CACHE_SLOTS`).
pub const CACHE_SLOTS: usize = 1024;

/// The faults the service can be switched into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every [`RELOAD_EVERY`]th cache lookup reloads the hot profiles from the store with a
    /// synchronous call ([`RELOAD_CALL`]) while it holds the cache lock.
    Lock,
}

/// With [`Fault::Lock`] on, one cache lookup in this many reloads under the lock.
pub const RELOAD_EVERY: u64 = 128;
/// How long the synchronous reload takes.
pub const RELOAD_CALL: Duration = Duration::from_millis(50);

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::Lock => "lock",
        })
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        match s {
            "lock" => Ok(Fault::Lock),
            other => Err(format!(
                "unknown fault `{other}` (known: lock: the cache reloads from the store while it holds its lock)"
            )),
        }
    }
}

/// A profile, as the store returns it.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The user's id.
    pub id: u64,
    /// The user's display name.
    pub name: String,
}

/// The profile store: a downstream service, reached asynchronously (a network round trip)
/// or, by the faulty reload, synchronously.
#[derive(Debug)]
pub struct ProfileStore {
    /// One asynchronous round trip.
    pub latency: Duration,
}

impl ProfileStore {
    /// Fetches a profile: the task awaits the round trip, its worker serves others meanwhile.
    pub async fn fetch(&self, id: u64) -> Profile {
        tokio::time::sleep(self.latency).await;
        tracing::debug!(id, "profile fetched from the store");
        Profile {
            id,
            name: format!("user-{id}"),
        }
    }

    /// Reloads the hot profiles with the store's blocking client: the calling thread waits.
    fn reload_blocking(&self, cache: &mut [Option<Profile>]) {
        std::thread::sleep(RELOAD_CALL);
        for p in cache.iter_mut().flatten() {
            p.name.make_ascii_lowercase();
        }
    }
}

/// The service's shared state.
#[derive(Debug)]
pub struct App {
    /// Profiles recently read; every request looks here first.
    cache: fdr::sync::Mutex<Vec<Option<Profile>>>,
    /// The downstream profile store.
    store: ProfileStore,
    /// Whether [`Fault::Lock`] is on.
    lock_fault: AtomicBool,
    /// Cache lookups so far (picks the lookups that reload under the fault).
    lookups: AtomicU64,
}

impl App {
    /// A service whose store answers in `store_latency`, no fault on.
    pub fn new(store_latency: Duration) -> App {
        App {
            cache: fdr::sync::Mutex::new(vec![None; CACHE_SLOTS]),
            store: ProfileStore {
                latency: store_latency,
            },
            lock_fault: AtomicBool::new(false),
            lookups: AtomicU64::new(0),
        }
    }

    /// Switches `fault` on or off.
    pub fn set_fault(&self, fault: Fault, on: bool) {
        match fault {
            Fault::Lock => self.lock_fault.store(on, Ordering::Relaxed),
        }
    }

    /// The cached profile of `id`, if any.
    fn cached(&self, id: u64) -> Option<Profile> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let n = self.lookups.fetch_add(1, Ordering::Relaxed);
        if self.lock_fault.load(Ordering::Relaxed) && n.is_multiple_of(RELOAD_EVERY) {
            // The fault: a synchronous call while the lock is held.
            self.store.reload_blocking(&mut cache);
        }
        cache[slot(id)].as_ref().filter(|p| p.id == id).cloned()
    }

    /// Keeps `profile` in the cache.
    fn remember(&self, profile: &Profile) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache[slot(profile.id)] = Some(profile.clone());
    }
}

fn slot(id: u64) -> usize {
    (id % CACHE_SLOTS as u64) as usize
}

/// The service's routes, with the layers that measure them: fdr's task per request (named
/// by the matched route), the OpenTelemetry server span around it, the latency histogram
/// around both. Layers go inside the router (`Router::layer`), where axum's `MatchedPath`
/// is known.
pub fn router(app: Arc<App>, telemetry: telemetry::Telemetry) -> Router {
    let spans = telemetry.exporter.clone();
    Router::new()
        .route("/user/{id}", get(get_user))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/debug/spans",
            get(move || std::future::ready(spans.recent_text())),
        )
        .layer(fdr::otel::ServerLayer::new())
        .layer(axum::middleware::from_fn(telemetry::server_span))
        .layer(axum::middleware::from_fn_with_state(
            telemetry.http,
            telemetry::observe,
        ))
        .with_state(app)
}

/// `GET /user/{id}`: the cache, the store on a miss, the page.
async fn get_user(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Result<String, StatusCode> {
    let cached = fdr::with_region("cache", || app.cached(id));
    let profile = match cached {
        Some(p) => p,
        None => {
            let p = app.store.fetch(id).in_region("db").await;
            fdr::with_region("cache", || app.remember(&p));
            p
        }
    };
    let page = render(&profile).await;
    fdr::log!("http", "GET /user/{id}: {} bytes", page.len());
    Ok(page)
}

/// Renders a profile page (a `tracing` span across its await: one async region in fdr).
#[tracing::instrument(level = "debug", skip_all, fields(id = profile.id))]
async fn render(profile: &Profile) -> String {
    tokio::task::yield_now().await;
    format!(
        "{{\"id\":{},\"name\":\"{}\"}}\n",
        profile.id,
        profile.name.escape_default()
    )
}

/// The README's Quick start, compiled as a doc test against this crate's dependencies (the
/// ones an application writes), so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeQuickStart;
