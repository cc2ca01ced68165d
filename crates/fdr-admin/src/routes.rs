//! Routing and the endpoints' handlers.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::Body;
use crate::capture::{self, Busy, Slot};
use crate::server::State;
use crate::stream::{Refusal, run_blocking};
use crate::{DEFAULT_CAPTURE_SECONDS, MAX_CAPTURE_SECONDS, prom};

/// Where the endpoint's pages live.
const PREFIX: &str = "/debug/fdr";
/// How long a `/metrics` request waits for the renderings ahead of it before a `429`.
const METRICS_WAIT: Duration = Duration::from_secs(5);

enum Route {
    Index,
    Flight,
    Trace,
    Incidents,
    Incident(String),
    Tasks,
    Metrics,
    #[cfg(feature = "pprof")]
    Profile,
}

fn route(path: &str) -> Option<Route> {
    Some(match path {
        "/metrics" => Route::Metrics,
        #[cfg(feature = "pprof")]
        "/debug/pprof/profile" => Route::Profile,
        _ => match path.strip_prefix(PREFIX)? {
            "" | "/" => Route::Index,
            "/flight" => Route::Flight,
            "/trace" => Route::Trace,
            "/tasks" => Route::Tasks,
            "/incidents" | "/incidents/" => Route::Incidents,
            rest => Route::Incident(rest.strip_prefix("/incidents/")?.to_owned()),
        },
    })
}

/// The answer to a request the endpoint does not serve, if it is one: without credentials,
/// its `Host` must name this endpoint (`421` otherwise); with them, it must carry them (`401`
/// otherwise).
pub(crate) fn refusal<B>(state: &State, req: &Request<B>) -> Option<Response<Body>> {
    if !state.auth.required() {
        let why = state.hosts.check(req).err()?;
        state.counters.misdirected.fetch_add(1, Ordering::Relaxed);
        return Some(text(StatusCode::MISDIRECTED_REQUEST, why));
    }
    if state.auth.allows(req.headers()) {
        return None;
    }
    state.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "unauthorized: this endpoint needs its bearer token or basic credentials",
    );
    for challenge in state.auth.challenges() {
        r.headers_mut().append(header::WWW_AUTHENTICATE, challenge);
    }
    Some(r)
}

/// Serves one request that [`refusal`] let through.
pub(crate) async fn serve(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let Some(route) = route(path) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "not found: {} (GET {PREFIX}/ lists the endpoints)",
                shown(path)
            ),
        );
    };
    if req.method() != Method::GET {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "method {} not allowed: use GET",
                shown(req.method().as_str())
            ),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let query = req.uri().query();
    let answer = match route {
        Route::Trace => trace(state, query).await,
        Route::Tasks => tasks(query),
        #[cfg(feature = "pprof")]
        Route::Profile => profile(state, query).await,
        other => match params(query, &[]) {
            Err(r) => Err(r),
            Ok(_) => match other {
                Route::Index => Ok(index(state)),
                Route::Flight => flight(state).await,
                Route::Incidents => incidents(state).await,
                Route::Incident(id) => incident(state, id).await,
                Route::Metrics => metrics(state).await,
                Route::Trace | Route::Tasks => unreachable!("handled above"),
                #[cfg(feature = "pprof")]
                Route::Profile => unreachable!("handled above"),
            },
        },
    };
    answer.unwrap_or_else(refused)
}

/// A client's text, shortened and escaped for a one-line message.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push_str("...");
    }
    out
}

/// The query's `key=value` pairs; a key not in `allowed`, or given twice, is a 400.
fn params<'q>(
    query: Option<&'q str>,
    allowed: &[&str],
) -> Result<Vec<(&'q str, &'q str)>, Refusal> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&k) {
            let takes = match allowed {
                [] => "no parameters".to_owned(),
                keys => format!("only {}", keys.join(", ")),
            };
            return Err(bad_request(format!(
                "unknown parameter `{}` (this endpoint takes {takes})",
                shown(k)
            )));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(bad_request(format!("parameter `{k}` given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// `seconds` for a capture: a whole number from 1 to [`MAX_CAPTURE_SECONDS`], default
/// [`DEFAULT_CAPTURE_SECONDS`].
fn capture_seconds(query: Option<&str>) -> Result<u32, Refusal> {
    seconds(query, DEFAULT_CAPTURE_SECONDS, MAX_CAPTURE_SECONDS)
}

/// The only parameter, `seconds`: a whole number from 1 to `max`, `default` when absent.
fn seconds(query: Option<&str>, default: u32, max: u32) -> Result<u32, Refusal> {
    let Some((_, v)) = params(query, &["seconds"])?.pop() else {
        return Ok(default);
    };
    let range = format!("a whole number of seconds from 1 to {max}");
    let n: u32 = v
        .parse()
        .ok()
        .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad_request(format!("seconds=\"{}\": expected {range}", shown(v))))?;
    if !(1..=max).contains(&n) {
        return Err(bad_request(format!("seconds={n}: expected {range}")));
    }
    Ok(n)
}

/// `/debug/fdr/tasks`: the live traced tasks (`format=text|json`, `limit=N`).
fn tasks(query: Option<&str>) -> Result<Response<Body>, Refusal> {
    let mut format = crate::tasks::Format::Text;
    let mut limit = crate::tasks::DEFAULT_TASKS;
    for (k, v) in params(query, &["format", "limit"])? {
        match (k, v) {
            ("format", "text") => format = crate::tasks::Format::Text,
            ("format", "json") => format = crate::tasks::Format::Json,
            ("format", v) => {
                return Err(bad_request(format!(
                    "format=\"{}\": expected text or json",
                    shown(v)
                )));
            }
            (_, v) => limit = crate::tasks::parse_limit(v).map_err(bad_request)?,
        }
    }
    let (content_type, body) = crate::tasks::render(format, limit);
    Ok(respond(StatusCode::OK, content_type, body))
}

fn bad_request(message: String) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, message)
}

/// A one-line plain-text answer.
fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut message = message.into();
    message.push('\n');
    respond(status, "text/plain; charset=utf-8", message)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn refused(r: Refusal) -> Response<Body> {
    let mut resp = text(r.status, r.message);
    if let Some(secs) = r.retry_after_secs {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A streamed trace download named `name`.
fn download(name: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let safe: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(200)
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `fdr-KIND-PID-UNIXSECONDS.EXT`.
fn dump_name(kind: &str, ext: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("fdr-{kind}-{}-{now}.{ext}", std::process::id())
}

fn index(state: &State) -> Response<Body> {
    let mut lines = vec![
        format!(
            "fdr admin endpoint (fdr-admin {}), pid {}",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ),
        String::new(),
        format!(
            "GET {PREFIX}/flight               the flight recorder's window as an fdr trace (fdr diagnose FILE)"
        ),
        format!(
            "GET {PREFIX}/trace?seconds=N      a capture of the next N seconds (default {DEFAULT_CAPTURE_SECONDS}, at most {MAX_CAPTURE_SECONDS}; one at a time, {} s apart; at most {} bytes)",
            state.capture_cooldown.as_secs_f64(),
            state.max_capture_bytes
        ),
    ];
    lines.push(format!(
        "GET {PREFIX}/tasks?format=text|json&limit=N  the live traced tasks, oldest first (default {} of them, at most {}): age, state, last waker, spawn site",
        crate::tasks::DEFAULT_TASKS,
        fdr_recorder::task::MAX_LIVE_TASKS
    ));
    if has_store(state) {
        lines.push(format!(
            "GET {PREFIX}/incidents            the sentinel's incidents, newest first (JSON)"
        ));
        lines.push(format!(
            "GET {PREFIX}/incidents/ID         one incident's dump"
        ));
    }
    #[cfg(feature = "pprof")]
    lines.push(format!(
        "GET /debug/pprof/profile?seconds=N a CPU profile of the next N seconds, gzipped pprof protobuf (default {}, at most {}; a capture: one at a time with the traces, same cooldown)",
        crate::profile::DEFAULT_PROFILE_SECONDS,
        crate::profile::MAX_PROFILE_SECONDS
    ));
    lines.push(
        "GET /metrics                       Prometheus text: fdr's runtime metrics, the recorder's, the sentinel's, the registries'"
            .to_owned(),
    );
    text(StatusCode::OK, lines.join("\n"))
}

#[cfg(feature = "sentinel")]
fn has_store(state: &State) -> bool {
    state.sentinel.is_some()
}

#[cfg(not(feature = "sentinel"))]
fn has_store(_: &State) -> bool {
    false
}

/// Clears the endpoint's snapshot flag when the snapshot is done.
struct FlightBusy(Arc<State>);

impl Drop for FlightBusy {
    fn drop(&mut self) {
        self.0.flight_busy.store(false, Ordering::Release);
    }
}

async fn flight(state: &Arc<State>) -> Result<Response<Body>, Refusal> {
    let refused_here = || {
        state
            .counters
            .snapshots_refused
            .fetch_add(1, Ordering::Relaxed);
    };
    if state.flight_busy.swap(true, Ordering::AcqRel) {
        refused_here();
        return Err(Refusal::busy(
            1,
            "a flight-recorder snapshot requested here is being sent; retry in a second",
        ));
    }
    let busy = FlightBusy(state.clone());
    // 1. The snapshot into a spool at the disk's pace; the recorder's snapshot is released
    //    when this ends, however slowly the client reads.
    let dir = state.spool_dir.clone();
    let spooled = tokio::task::spawn_blocking(move || spool_snapshot(&dir))
        .await
        .map_err(|_| Refusal::internal("the snapshot panicked"))?;
    let (mut spool, length) = spooled.inspect_err(|r| {
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused_here();
        }
    })?;
    // 2. The spool to the client, within the transfer timeout.
    let streamed = run_blocking(state.transfer_timeout, move |sink| {
        let _busy = busy;
        std::io::copy(&mut spool, sink)
            .map(|_| ())
            .map_err(|e| Refusal::internal(format!("sending the snapshot failed: {e}")))
    })
    .await?;
    state.counters.snapshots.fetch_add(1, Ordering::Relaxed);
    Ok(download(
        &dump_name("flight", "fdr"),
        Body::stream(streamed.rx, streamed.status, None).with_length(length),
    ))
}

/// Bytes gathered before a write to the spool.
const SPOOL_BUFFER_BYTES: usize = 1 << 20;

/// Writes the flight recorder's window into a new spool in `dir`; returns it rewound, with
/// its length.
fn spool_snapshot(dir: &Path) -> Result<(File, u64), Refusal> {
    let unavailable = |what: String| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, what);
    let mut spool = crate::spool::create(dir).map_err(|e| {
        unavailable(format!(
            "could not create a spool file in {} for the snapshot: {e} (AdminBuilder::spool_dir)",
            dir.display()
        ))
    })?;
    let mut out = BufWriter::with_capacity(SPOOL_BUFFER_BYTES, &mut spool);
    match fdr_recorder::flight().write_to(&mut out) {
        Ok(_) => {}
        Err(fdr_recorder::Error::SnapshotInProgress) => {
            return Err(Refusal::busy(
                1,
                "a flight-recorder snapshot is being written (by the sentinel or the service); retry in a second",
            ));
        }
        Err(fdr_recorder::Error::NotStarted) => {
            return Err(unavailable(
                "the recorder is not started: the service must call fdr::start first".into(),
            ));
        }
        Err(e) => {
            return Err(unavailable(format!(
                "spooling the snapshot into {} failed: {e}",
                dir.display()
            )));
        }
    }
    let flushed = out.flush();
    drop(out);
    let spooled = flushed
        .and_then(|()| {
            let length = spool.seek(SeekFrom::End(0))?;
            spool.rewind()?;
            Ok(length)
        })
        .map_err(|e| {
            unavailable(format!(
                "spooling the snapshot into {} failed: {e}",
                dir.display()
            ))
        })?;
    Ok((spool, spooled))
}

async fn trace(state: &Arc<State>, query: Option<&str>) -> Result<Response<Body>, Refusal> {
    let seconds = capture_seconds(query)?;
    refuse_if_degraded(state)?;
    let length = Duration::from_secs(seconds.into());
    let slot = take_slot(state, length)?;
    let st = state.clone();
    let started = capture::start(slot, length, state.max_capture_bytes, move |run| {
        st.counters
            .capture_bytes
            .fetch_add(run.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    })?;
    state.counters.captures.fetch_add(1, Ordering::Relaxed);
    Ok(download(
        &dump_name("trace", "fdr"),
        Body::stream(started.rx, started.status, Some(started.on_drop)),
    ))
}

/// A CPU profile is a capture (see `profile.rs`): the same slot, cooldown, degraded guard
/// and counters.
#[cfg(feature = "pprof")]
async fn profile(state: &Arc<State>, query: Option<&str>) -> Result<Response<Body>, Refusal> {
    use crate::profile::{DEFAULT_PROFILE_SECONDS, MAX_PROFILE_SECONDS};
    let secs = seconds(query, DEFAULT_PROFILE_SECONDS, MAX_PROFILE_SECONDS)?;
    refuse_if_degraded(state)?;
    let length = Duration::from_secs(secs.into());
    let slot = take_slot(state, length)?;
    let encoded = crate::profile::profile(secs, slot).await?;
    state.counters.captures.fetch_add(1, Ordering::Relaxed);
    Ok(download(&dump_name("cpu", "pb.gz"), Body::full(encoded)))
}

/// The capture slot, or the refusal (counted) that says when to retry.
fn take_slot(state: &State, length: Duration) -> Result<Slot, Refusal> {
    Slot::take(length, state.capture_cooldown).map_err(|(busy, refusal)| {
        let c = match busy {
            Busy::Running => &state.counters.captures_refused_running,
            Busy::Cooldown => &state.counters.captures_refused_cooldown,
        };
        c.fetch_add(1, Ordering::Relaxed);
        refusal
    })
}

#[cfg(feature = "sentinel")]
fn refuse_if_degraded(state: &State) -> Result<(), Refusal> {
    let Some(s) = state
        .sentinel
        .as_ref()
        .filter(|_| state.refuse_when_degraded)
    else {
        return Ok(());
    };
    if !s.degraded() {
        return Ok(());
    }
    state
        .counters
        .captures_refused_degraded
        .fetch_add(1, Ordering::Relaxed);
    Err(Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "refusing an on-demand capture: the sentinel reports the process degraded (breaching: {}); {PREFIX}/flight and the incidents stay available",
            s.breaching().join(", ")
        ),
    ))
}

#[cfg(not(feature = "sentinel"))]
fn refuse_if_degraded(_: &State) -> Result<(), Refusal> {
    Ok(())
}

async fn metrics(state: &Arc<State>) -> Result<Response<Body>, Refusal> {
    // One rendering at a time; a request waits for the others a bounded time.
    let _permit = tokio::time::timeout(METRICS_WAIT, state.metrics_permit.acquire())
        .await
        .map_err(|_| {
            Refusal::busy(
                1,
                "the metrics are being rendered for other requests; retry in a second",
            )
        })?
        .map_err(|_| Refusal::internal("the endpoint is shutting down"))?;
    let st = state.clone();
    let rendered = tokio::task::spawn_blocking(move || prom::render(&st))
        .await
        .map_err(|_| Refusal::internal("rendering the metrics panicked"))?
        .map_err(Refusal::internal)?;
    Ok(respond(StatusCode::OK, prom::CONTENT_TYPE, rendered))
}

#[cfg(feature = "sentinel")]
fn store(state: &State) -> Result<Arc<dyn fdr_sentinel::IncidentStore>, Refusal> {
    state
        .sentinel
        .as_ref()
        .map(|s| s.store())
        .ok_or_else(no_store)
}

fn no_store() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "no incidents here: no sentinel is attached to this endpoint (Admin::builder().sentinel(..))",
    )
}

#[cfg(feature = "sentinel")]
fn store_permit(state: &State) -> Result<tokio::sync::OwnedSemaphorePermit, Refusal> {
    state
        .store_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal::busy(1, "incident reads are busy; retry in a second"))
}

#[cfg(feature = "sentinel")]
fn store_refusal(e: fdr_sentinel::StoreError) -> Refusal {
    use fdr_sentinel::StoreError;
    match e {
        StoreError::BadId(_) => bad_request(e.to_string()),
        StoreError::NotFound(_) => Refusal::new(StatusCode::NOT_FOUND, e.to_string()),
        e => Refusal::internal(e.to_string()),
    }
}

#[cfg(feature = "sentinel")]
async fn incidents(state: &Arc<State>) -> Result<Response<Body>, Refusal> {
    let store = store(state)?;
    let _permit = store_permit(state)?;
    let listing = tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|_| Refusal::internal("listing the incidents panicked"))?
        .map_err(store_refusal)?;
    let incidents: Vec<_> = listing
        .incidents
        .iter()
        .map(|m| {
            let mut v = m.to_json();
            v["download"] = format!("{PREFIX}/incidents/{}", m.id).into();
            v
        })
        .collect();
    let unreadable: Vec<_> = listing
        .unreadable
        .iter()
        .map(|(id, why)| serde_json::json!({"id": id, "why": why}))
        .collect();
    let json = serde_json::json!({"incidents": incidents, "unreadable": unreadable});
    let mut body = serde_json::to_vec_pretty(&json)
        .map_err(|e| Refusal::internal(format!("encoding the listing failed: {e}")))?;
    body.push(b'\n');
    Ok(respond(StatusCode::OK, "application/json", body))
}

#[cfg(feature = "sentinel")]
async fn incident(state: &Arc<State>, id: String) -> Result<Response<Body>, Refusal> {
    let store = store(state)?;
    let permit = store_permit(state)?;
    let name = format!("{id}.fdr");
    let streamed = run_blocking(state.transfer_timeout, move |sink| {
        let _permit = permit;
        let mut dump = store.open(&id).map_err(store_refusal)?;
        std::io::copy(&mut dump, sink)
            .map(|_| ())
            .map_err(|e| Refusal::internal(format!("sending incident {id} failed: {e}")))
    })
    .await?;
    Ok(download(
        &name,
        Body::stream(streamed.rx, streamed.status, None),
    ))
}

#[cfg(not(feature = "sentinel"))]
async fn incidents(_: &Arc<State>) -> Result<Response<Body>, Refusal> {
    Err(no_store())
}

#[cfg(not(feature = "sentinel"))]
async fn incident(_: &Arc<State>, _: String) -> Result<Response<Body>, Refusal> {
    Err(no_store())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_exact_paths() {
        assert!(matches!(route("/debug/fdr"), Some(Route::Index)));
        assert!(matches!(route("/debug/fdr/"), Some(Route::Index)));
        assert!(matches!(route("/debug/fdr/flight"), Some(Route::Flight)));
        assert!(matches!(
            route("/debug/fdr/incidents/"),
            Some(Route::Incidents)
        ));
        assert!(
            matches!(route("/debug/fdr/incidents/a-b"), Some(Route::Incident(id)) if id == "a-b")
        );
        assert!(route("/debug/fdr/flight/").is_none());
        assert!(route("/debug/fdrx").is_none());
        assert!(route("/metrics/").is_none());
        assert!(route("/").is_none());
    }

    #[test]
    fn seconds_must_be_a_whole_number_in_range() {
        assert_eq!(capture_seconds(None).unwrap(), DEFAULT_CAPTURE_SECONDS);
        assert_eq!(capture_seconds(Some("seconds=30")).unwrap(), 30);
        assert_eq!(capture_seconds(Some("seconds=1&")).unwrap(), 1);
        for bad in [
            "seconds=0",
            "seconds=31",
            "seconds=abc",
            "seconds=",
            "seconds=+5",
            "seconds=-1",
            "seconds=1.5",
            "seconds=99999999999999999999",
            "seconds=1&seconds=2",
            "secs=1",
        ] {
            let r = capture_seconds(Some(bad)).unwrap_err();
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(!r.message.contains('\n'), "{bad}: one line");
        }
    }
}
