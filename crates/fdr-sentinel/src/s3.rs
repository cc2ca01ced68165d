//! Incidents in an S3-compatible object store (feature `s3`): AWS S3, MinIO, Ceph, or any
//! server speaking S3's REST API with AWS Signature Version 4.
//!
//! An incident is two objects, `PREFIX/ID.fdr` (the dump) and `PREFIX/ID.json` (the
//! sidecar), addressed path-style (`http://host:port/bucket/PREFIX/ID.fdr`). The semantics
//! are [`DirStore`](crate::DirStore)'s:
//!
//! - **Complete or invisible.** A `PUT` of an object is atomic in S3: the object exists
//!   once all of it arrived, never in part. The dump is uploaded first and the sidecar last,
//!   and [`IncidentStore::list`] shows only incidents with both, so an upload cut short
//!   (a dead server, a timeout, a dump that failed midway) is never seen. After a failure
//!   the store deletes what it uploaded (best effort; what a dead server kept is swept by
//!   the retention of a later `put`, once an hour old).
//! - **Bounded memory.** The dump closure writes into a spool file (in
//!   [`S3Config::spool_dir`], removed afterwards) while its SHA-256 is computed; the file is
//!   then sent in 256 KiB chunks in one `PUT` with its length. [`IncidentStore::open`]
//!   downloads into a spool file too and returns it (removed when the reader is dropped).
//!   A single `PUT` takes up to 5 GiB, far above a flight recorder's ring (64 MiB by
//!   default); multipart uploads would save the spool's disk space but need more requests
//!   and leave parts to abort when a dump fails.
//! - **Signed payloads.** Every request carries `x-amz-content-sha256` with the real hash
//!   of its body (never `UNSIGNED-PAYLOAD`): spooling computes the dump's hash as it is
//!   written, at no extra read, and with it the server checks that the body it received is
//!   the one signed, so a corrupted or truncated upload is refused instead of stored.
//! - **Retention** by count and bytes, after each `put`: the oldest incidents past either
//!   bound go, sidecar first (it is what makes an incident visible); the newest is kept.
//!
//! HTTP is hyper's HTTP/1 client on a small current-thread tokio runtime owned by the
//! store, one connection per request; the store's methods block (the sentinel's dump thread
//! is synchronous). Called from inside an async runtime, a method runs the request on a
//! scoped thread instead of blocking that runtime's driver, but it still blocks the
//! caller: use `spawn_blocking`. Every request, its body included, must be done within
//! [`S3Config::timeout`]. Only `http://` endpoints are supported (a local MinIO, a
//! TLS-terminating proxy); TLS would bring a TLS stack into the crate.

use std::fmt;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

use crate::layout::{self, civil_from_days, days_from_civil};
use crate::store::{
    DumpFn, IncidentMeta, IncidentStore, Listing, Retention, SIDECAR_MAX_BYTES, StoreError,
    check_id, retention_victims,
};

/// Bytes of a request body sent per frame.
const CHUNK_BYTES: usize = 256 << 10;
/// The most of an error answer read (S3's are a few hundred bytes of XML).
const ERROR_BODY_MAX_BYTES: usize = 64 << 10;
/// The most of a ListObjectsV2 page read (1000 keys of up to 1 KiB, and their XML).
const LIST_BODY_MAX_BYTES: usize = 16 << 20;
/// ListObjectsV2 pages read before giving up (a million keys at S3's page size).
const LIST_MAX_PAGES: usize = 1000;
/// Half an incident older than this (a dump without its sidecar, or the reverse) is what a
/// failed `put` left behind, not one being written: retention deletes it.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);
/// SHA-256 of nothing.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Where and how an [`S3Store`] keeps incidents.
///
/// ```
/// use fdr_sentinel::{Retention, S3Config};
///
/// let config = S3Config {
///     access_key_id: "AKIA...".into(),
///     secret_access_key: "...".into(),
///     retention: Retention { max_count: 50, max_bytes: 4 << 30 },
///     ..S3Config::from_url("http://127.0.0.1:9000/incidents/checkout-service").unwrap()
/// };
/// assert_eq!(config.endpoint, "http://127.0.0.1:9000");
/// assert_eq!((config.bucket.as_str(), config.prefix.as_str()), ("incidents", "checkout-service"));
/// ```
#[derive(Clone, PartialEq)]
pub struct S3Config {
    /// The server, `http://host[:port]`, with no path: requests are path-style,
    /// `endpoint/bucket/key`.
    pub endpoint: String,
    /// The region requests are signed for (default `us-east-1`, which most S3-compatible
    /// servers accept).
    pub region: String,
    /// The bucket (it must exist; [`S3Store::create_bucket`] makes one).
    pub bucket: String,
    /// Keys are `PREFIX/ID.fdr` and `PREFIX/ID.json`; empty for the bucket's top level.
    /// Slashes at either end are ignored.
    pub prefix: String,
    /// The access key's id.
    pub access_key_id: String,
    /// The access key's secret (never printed: `Debug` shows it redacted).
    pub secret_access_key: String,
    /// Incidents kept.
    pub retention: Retention,
    /// Every request, its body included, must be done within this (default 60 s: a
    /// 64 MiB dump needs a little over 1 MB/s).
    pub timeout: Duration,
    /// Where a dump is spooled before its upload, and after its download by
    /// [`IncidentStore::open`] (default: the system's temporary directory).
    pub spool_dir: PathBuf,
    /// Keys asked for per ListObjectsV2 page (default 1000, S3's most; fewer only makes
    /// more requests).
    pub list_page_keys: u32,
    /// The mode of spool files (default 0o600, [`crate::DEFAULT_FILE_MODE`]; no one but
    /// the owner may write them). They are created exclusively, never through a symlink.
    pub file_mode: u32,
}

impl Default for S3Config {
    /// No server, no bucket, no credentials: set those (or start from
    /// [`S3Config::from_url`]).
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            retention: Retention::default(),
            timeout: Duration::from_secs(60),
            spool_dir: std::env::temp_dir(),
            list_page_keys: 1000,
            file_mode: crate::DEFAULT_FILE_MODE,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("retention", &self.retention)
            .field("timeout", &self.timeout)
            .field("spool_dir", &self.spool_dir)
            .field("list_page_keys", &self.list_page_keys)
            .field("file_mode", &format_args!("{:#o}", self.file_mode))
            .finish()
    }
}

impl S3Config {
    /// The defaults, with the endpoint, bucket and prefix of a path-style URL,
    /// `http://host[:port]/bucket[/prefix...]` (the form `FDR_SENTINEL_S3_URL` takes).
    pub fn from_url(url: &str) -> Result<S3Config, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                "https is not supported: use an http:// endpoint (a TLS-terminating proxy can \
                 stand in front of a remote store)"
                    .to_owned()
            } else {
                "expected http://host[:port]/bucket[/prefix]".to_owned()
            }
        })?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.split(['?', '#']).next().unwrap_or("");
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err("no bucket: expected http://host[:port]/bucket[/prefix]".into());
        }
        let config = S3Config {
            endpoint: format!("http://{authority}"),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            ..S3Config::default()
        };
        Endpoint::parse(&config.endpoint)?;
        Ok(config)
    }
}

/// The server's address, as connected to and as named in the `Host` header.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `host:port` for the connection (an IPv6 address without its brackets).
    host: String,
    port: u16,
    /// The `Host` header (`host` alone for port 80).
    authority: String,
}

impl Endpoint {
    fn parse(endpoint: &str) -> Result<Endpoint, String> {
        let authority = match endpoint.strip_prefix("http://") {
            Some(a) => a.trim_end_matches('/'),
            None if endpoint.starts_with("https://") => {
                return Err("https is not supported: use an http:// endpoint".into());
            }
            None => return Err("expected http://host[:port]".into()),
        };
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err("expected http://host[:port], with no path".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or("an IPv6 address needs its closing `]`")?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("bad port `{p}`"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        let authority = if port == 80 {
            authority.trim_end_matches(":80").to_owned()
        } else {
            authority.to_owned()
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            authority,
        })
    }
}

/// Incidents in an S3-compatible object store: dump, then sidecar, each one atomic `PUT`;
/// only incidents with both are listed; retention by count and bytes after each `put`.
///
/// ```no_run
/// use fdr_sentinel::{Rule, S3Config, S3Store, Sentinel};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = S3Store::new(S3Config {
///     access_key_id: std::env::var("AWS_ACCESS_KEY_ID")?,
///     secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY")?,
///     ..S3Config::from_url("http://127.0.0.1:9000/incidents/checkout")?
/// })?;
/// let sentinel = Sentinel::builder()
///     .rule(Rule::parse("slow: fdr_sched_latency_ns p99 > 20ms for 3")?)
///     .store(store)
///     .start()?;
/// # drop(sentinel);
/// # Ok(()) }
/// ```
///
/// How it writes, reads, signs and bounds its memory: [the module docs](crate::s3).
pub struct S3Store {
    config: S3Config,
    endpoint: Endpoint,
    /// `PREFIX/`, or empty.
    key_prefix: String,
    /// Always there until the store is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// The next spool file's number.
    next_spool: AtomicU64,
}

impl Drop for S3Store {
    fn drop(&mut self) {
        // Without blocking: dropping a runtime may not block inside another one (a store
        // dropped by an async service). Every request's tasks ended with its `block_on`.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An answer: its status and its body (read into memory for a non-2xx, or a 2xx into
/// [`Sink::Memory`]).
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// Where an answer's body goes.
enum Sink<'a> {
    /// Into memory, up to this many bytes.
    Memory(usize),
    /// Into a spool file.
    Spool(&'a mut Spool),
}

/// What a request sends.
enum Payload {
    Empty,
    Bytes(Option<Bytes>),
    File { file: File, remaining: u64 },
}

impl Payload {
    fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Payload::File { remaining, .. } => *remaining,
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let frame = match self.get_mut() {
            Payload::Empty => None,
            Payload::Bytes(b) => b.take().map(|b| Ok(Frame::data(b))),
            // A spool file on a local disk: read in place (the runtime is the store's own).
            Payload::File { file, remaining } if *remaining > 0 => {
                let n = (*remaining).min(CHUNK_BYTES as u64) as usize;
                let mut buf = vec![0; n];
                Some(file.read_exact(&mut buf).map(|()| {
                    *remaining -= n as u64;
                    Frame::data(Bytes::from(buf))
                }))
            }
            Payload::File { .. } => None,
        };
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

/// A request to make.
struct Call<'a> {
    /// What it does, for errors (`uploading the dump`).
    op: &'static str,
    method: &'static str,
    /// The object's key; empty for the bucket itself.
    key: &'a str,
    query: Vec<(&'static str, String)>,
    body: Payload,
    /// Hex SHA-256 of the body.
    body_sha256: String,
    content_type: Option<&'static str>,
}

impl<'a> Call<'a> {
    fn new(op: &'static str, method: &'static str, key: &'a str) -> Call<'a> {
        Call {
            op,
            method,
            key,
            query: Vec::new(),
            body: Payload::Empty,
            body_sha256: EMPTY_SHA256.into(),
            content_type: None,
        }
    }
}

/// Aborts the connection's task when the request is done or abandoned (a timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl S3Store {
    /// A store as `config` says. Checks the configuration and creates the spool directory;
    /// it sends nothing (a wrong bucket or key shows at the first request).
    pub fn new(config: S3Config) -> Result<S3Store, StoreError> {
        let bad = |what: &str, why: &str| StoreError::Other(format!("S3 store: {what}: {why}"));
        let endpoint = Endpoint::parse(&config.endpoint)
            .map_err(|e| bad(&format!("endpoint `{}`", config.endpoint), &e))?;
        if config.bucket.is_empty() || config.bucket.contains('/') {
            return Err(bad(
                &format!("bucket `{}`", config.bucket),
                "expected a bucket name, with no `/`",
            ));
        }
        if config.region.is_empty()
            || !config
                .region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(bad(
                &format!("region `{}`", config.region),
                "expected a region name, like `us-east-1` (most servers accept it)",
            ));
        }
        if config.access_key_id.is_empty() || config.secret_access_key.is_empty() {
            return Err(bad(
                "credentials",
                "the access key id and the secret access key are both needed",
            ));
        }
        if config.timeout.is_zero() {
            return Err(bad("timeout", "must be above zero"));
        }
        if !(1..=1000).contains(&config.list_page_keys) {
            return Err(bad(
                "list_page_keys",
                &format!("{}: expected 1 to 1000", config.list_page_keys),
            ));
        }
        layout::check_file_mode(config.file_mode).map_err(|why| bad("spool files", &why))?;
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, layout::dir_mode(config.file_mode));
        builder
            .create(&config.spool_dir)
            .map_err(|source| StoreError::Io {
                op: "creating the spool directory",
                path: config.spool_dir.clone(),
                source,
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| bad("starting its HTTP client", &e.to_string()))?;
        let prefix = config.prefix.trim_matches('/');
        let key_prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok(S3Store {
            config,
            endpoint,
            key_prefix,
            runtime: Some(runtime),
            next_spool: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Creates the bucket (in the configured region); a bucket this account already owns is
    /// fine.
    pub fn create_bucket(&self) -> Result<(), StoreError> {
        let mut call = Call::new("creating the bucket", "PUT", "");
        if self.config.region != "us-east-1" {
            let body = format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.config.region
            );
            call.body_sha256 = hex(&Sha256::digest(body.as_bytes()));
            call.body = Payload::Bytes(Some(Bytes::from(body)));
            call.content_type = Some("application/xml");
        }
        let reply = self.call(&mut call, Sink::Memory(ERROR_BODY_MAX_BYTES))?;
        match reply.status {
            200..=299 => Ok(()),
            409 if error_code(&reply.body).as_deref() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            _ => Err(self.refused(&call, &reply)),
        }
    }

    /// Every object under the prefix (keys relative to it): incidents, and halves of
    /// incidents a failed `put` left, with their sizes and ages.
    fn objects(&self) -> Result<Vec<Object>, StoreError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..LIST_MAX_PAGES {
            let mut call = Call::new("listing", "GET", "");
            call.query = vec![
                ("list-type", "2".into()),
                ("max-keys", self.config.list_page_keys.to_string()),
                ("delimiter", "/".into()),
            ];
            if !self.key_prefix.is_empty() {
                call.query.push(("prefix", self.key_prefix.clone()));
            }
            if let Some(t) = token.take() {
                call.query.push(("continuation-token", t));
            }
            let reply = self.call(&mut call, Sink::Memory(LIST_BODY_MAX_BYTES))?;
            if reply.status != 200 {
                return Err(self.refused(&call, &reply));
            }
            let xml = String::from_utf8_lossy(&reply.body);
            for contents in xml_elements(&xml, "Contents") {
                let Some(key) = xml_text(contents, "Key") else {
                    continue;
                };
                let Some(name) = key.strip_prefix(&self.key_prefix) else {
                    continue;
                };
                objects.push(Object {
                    name: name.to_owned(),
                    bytes: xml_text(contents, "Size")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                    modified_unix_s: xml_text(contents, "LastModified")
                        .and_then(|t| parse_iso8601(&t)),
                });
            }
            if xml_text(&xml, "IsTruncated").as_deref() != Some("true") {
                return Ok(objects);
            }
            token = xml_text(&xml, "NextContinuationToken").filter(|t| !t.is_empty());
            if token.is_none() {
                return Err(self.error(
                    "listing",
                    "",
                    Some(reply.status),
                    None,
                    "a truncated page without a NextContinuationToken".into(),
                ));
            }
        }
        Err(self.error(
            "listing",
            "",
            None,
            None,
            format!("more than {LIST_MAX_PAGES} pages of keys; is the prefix shared?"),
        ))
    }

    /// The incidents among `objects`, with their sidecars read.
    fn read_listing(&self, objects: &[Object]) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        for (id, bytes) in pair(objects).complete {
            let key = self.key(&id, "json");
            let mut call = Call::new("reading the sidecar", "GET", &key);
            let reply = self.call(&mut call, Sink::Memory(SIDECAR_MAX_BYTES as usize))?;
            match reply.status {
                200 => {}
                // Removed since the listing (by another writer's retention).
                404 => continue,
                _ => return Err(self.refused(&call, &reply)),
            }
            let read = serde_json::from_slice(&reply.body)
                .map_err(|e| e.to_string())
                .and_then(|v| IncidentMeta::from_json(&v));
            // The id and the size come from the keys and the listing, never from the
            // sidecar's content.
            match read {
                Ok(m) => listing.incidents.push(IncidentMeta { id, bytes, ..m }),
                Err(why) => listing.unreadable.push((id, why)),
            }
        }
        listing
            .incidents
            .sort_by(|a, b| (b.time_unix_ms, &b.id).cmp(&(a.time_unix_ms, &a.id)));
        Ok(listing)
    }

    /// Deletes the oldest incidents past the retention (sidecar first) and halves of
    /// incidents older than [`ORPHAN_MIN_AGE`]. Every deletion is tried; the first error
    /// is returned.
    fn retain(&self) -> Result<(), StoreError> {
        let objects = self.objects()?;
        let listing = self.read_listing(&objects)?;
        let mut doomed = Vec::new();
        for id in retention_victims(&listing.incidents, self.config.retention, None) {
            doomed.push(self.key(id, "json"));
            doomed.push(self.key(id, "fdr"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for name in pair(&objects).orphans_older_than(now, ORPHAN_MIN_AGE) {
            doomed.push(format!("{}{name}", self.key_prefix));
        }
        let mut first_error = None;
        for key in doomed {
            if let Err(e) = self.delete(&key, "deleting past the retention") {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn put_object(
        &self,
        op: &'static str,
        key: &str,
        body: Payload,
        body_sha256: String,
        content_type: &'static str,
    ) -> Result<(), StoreError> {
        let mut call = Call::new(op, "PUT", key);
        call.body = body;
        call.body_sha256 = body_sha256;
        call.content_type = Some(content_type);
        let reply = self.call(&mut call, Sink::Memory(ERROR_BODY_MAX_BYTES))?;
        if (200..300).contains(&reply.status) {
            Ok(())
        } else {
            Err(self.refused(&call, &reply))
        }
    }

    fn delete(&self, key: &str, op: &'static str) -> Result<(), StoreError> {
        let mut call = Call::new(op, "DELETE", key);
        let reply = self.call(&mut call, Sink::Memory(ERROR_BODY_MAX_BYTES))?;
        match reply.status {
            200..=299 | 404 => Ok(()),
            _ => Err(self.refused(&call, &reply)),
        }
    }

    fn key(&self, id: &str, ext: &str) -> String {
        format!("{}{id}.{ext}", self.key_prefix)
    }

    fn object_name(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.config.bucket)
    }

    fn error(
        &self,
        op: &'static str,
        key: &str,
        status: Option<u16>,
        code: Option<String>,
        message: String,
    ) -> StoreError {
        StoreError::Remote {
            op,
            object: self.object_name(key),
            status,
            code,
            message,
        }
    }

    /// The error for an answer that is not the one hoped for: its status and S3's
    /// `<Code>` and `<Message>`.
    fn refused(&self, call: &Call<'_>, reply: &Reply) -> StoreError {
        let xml = String::from_utf8_lossy(&reply.body);
        let message = xml_text(&xml, "Message")
            .or_else(|| {
                let text = xml.trim();
                (!text.is_empty() && !text.starts_with('<'))
                    .then(|| text.chars().take(200).collect())
            })
            .unwrap_or_else(|| status_text(reply.status).into());
        self.error(
            call.op,
            call.key,
            Some(reply.status),
            xml_text(&xml, "Code"),
            message,
        )
    }

    /// Makes `call`, within the timeout: an answer of any status is a [`Reply`]; no
    /// (complete) answer is an error.
    fn call(&self, call: &mut Call<'_>, sink: Sink<'_>) -> Result<Reply, StoreError> {
        let timeout = self.config.timeout;
        let body = std::mem::replace(&mut call.body, Payload::Empty);
        let exchange = self.exchange(call, body, sink);
        self.block_on(async {
            tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(format!("no complete answer within {timeout:?}")))
        })
        .map_err(|message| self.error(call.op, call.key, None, None, message))
    }

    /// Runs `fut` on the store's runtime: here, or (when called from inside another
    /// runtime, where blocking on one would panic) on a scoped thread.
    fn block_on<T: Send>(&self, fut: impl Future<Output = T> + Send) -> T {
        let runtime = self
            .runtime
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime goes only with the store"));
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(fut);
        }
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    async fn exchange(
        &self,
        call: &Call<'_>,
        body: Payload,
        sink: Sink<'_>,
    ) -> Result<Reply, String> {
        let path = if call.key.is_empty() {
            format!("/{}", self.config.bucket)
        } else {
            format!("/{}/{}", self.config.bucket, call.key)
        };
        let credentials = Credentials {
            access_key_id: &self.config.access_key_id,
            secret_access_key: &self.config.secret_access_key,
            region: &self.config.region,
            service: "s3",
        };
        let query: Vec<(&str, &str)> = call.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let amz_date = amz_date(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        let mut headers = vec![
            ("host", self.endpoint.authority.as_str()),
            ("x-amz-content-sha256", call.body_sha256.as_str()),
            ("x-amz-date", amz_date.as_str()),
        ];
        if let Some(ct) = call.content_type {
            headers.push(("content-type", ct));
        }
        let authorization = credentials.authorization(
            call.method,
            &path,
            &query,
            &headers,
            &call.body_sha256,
            &amz_date,
        );
        // The path and query exactly as signed.
        let mut uri = uri_encode(&path, false);
        let canonical_query = canonical_query(&query);
        if !canonical_query.is_empty() {
            uri = format!("{uri}?{canonical_query}");
        }
        let mut request = hyper::Request::builder().method(call.method).uri(uri);
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let length = body.len();
        let request = request
            .header("authorization", authorization)
            .header("content-length", length)
            .body(body)
            .map_err(|e| format!("building the request: {e}"))?;

        let address = (self.endpoint.host.as_str(), self.endpoint.port);
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.endpoint.authority))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {}", chain(&e)))?;
        let _connection = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("sending the request: {}", chain(&e)))?;
        let status = response.status().as_u16();
        let success = (200..300).contains(&status);
        let mut sink = if success {
            sink
        } else {
            Sink::Memory(ERROR_BODY_MAX_BYTES)
        };
        let mut body = response.into_body();
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the answer: {}", chain(&e)))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            match &mut sink {
                Sink::Memory(max) => {
                    if kept.len() + data.len() > *max {
                        if !success {
                            // Enough of an error answer to name it.
                            break;
                        }
                        return Err(format!("an answer over {max} bytes"));
                    }
                    kept.extend_from_slice(&data);
                }
                Sink::Spool(spool) => spool.file.write_all(&data).map_err(|e| {
                    format!("writing the download to {}: {e}", spool.path.display())
                })?,
            }
        }
        Ok(Reply { status, body: kept })
    }

    /// A new spool file.
    fn spool(&self) -> Result<Spool, StoreError> {
        let (file, path) = layout::create_temp(
            &self.config.spool_dir,
            "fdr-s3",
            "spool",
            self.config.file_mode,
            true,
            &self.next_spool,
        )
        .map_err(|source| StoreError::Io {
            op: "creating a spool file",
            path: self.config.spool_dir.clone(),
            source,
        })?;
        Ok(Spool { file, path })
    }

    /// Deletes what a failed `put` may have uploaded (a `PUT` whose answer was lost may
    /// still have landed): the sidecar first.
    fn clean_up(&self, keys: &[&str]) {
        for key in keys {
            let _ = self.delete(key, "cleaning up");
        }
    }
}

impl IncidentStore for S3Store {
    fn put(&self, meta: &IncidentMeta, dump: &mut DumpFn<'_>) -> Result<IncidentMeta, StoreError> {
        check_id(&meta.id)?;
        let mut spool = self.spool()?;
        let (bytes, dump_sha256) = {
            let mut out = Hashing {
                inner: BufWriter::with_capacity(1 << 20, &mut spool.file),
                sha256: Sha256::new(),
                written: 0,
            };
            let result = dump(&mut out);
            let written = out.written;
            result
                .and_then(|_| out.inner.flush())
                .map_err(|source| StoreError::Dump { written, source })?;
            (written, hex(&out.sha256.finalize()))
        };
        let file = spool
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| spool.file.try_clone())
            .map_err(|source| StoreError::Io {
                op: "reading the spooled dump",
                path: spool.path.clone(),
                source,
            })?;
        let dump_key = self.key(&meta.id, "fdr");
        let sidecar_key = self.key(&meta.id, "json");
        if let Err(e) = self.put_object(
            "uploading the dump",
            &dump_key,
            Payload::File {
                file,
                remaining: bytes,
            },
            dump_sha256,
            "application/octet-stream",
        ) {
            self.clean_up(&[&dump_key]);
            return Err(e);
        }
        drop(spool);
        let stored = IncidentMeta {
            bytes,
            ..meta.clone()
        };
        let json = serde_json::to_vec_pretty(&stored.to_json()).unwrap_or_default();
        let json_sha256 = hex(&Sha256::digest(&json));
        if let Err(e) = self.put_object(
            "uploading the sidecar",
            &sidecar_key,
            Payload::Bytes(Some(Bytes::from(json))),
            json_sha256,
            "application/json",
        ) {
            self.clean_up(&[&sidecar_key, &dump_key]);
            return Err(e);
        }
        self.retain().map_err(|e| {
            StoreError::Other(format!(
                "incident `{}` was stored, but applying the retention failed: {e}",
                meta.id
            ))
        })?;
        Ok(stored)
    }

    fn list(&self) -> Result<Listing, StoreError> {
        self.read_listing(&self.objects()?)
    }

    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        check_id(id)?;
        // Visible only with its sidecar.
        let sidecar_key = self.key(id, "json");
        let mut head = Call::new("opening", "HEAD", &sidecar_key);
        let reply = self.call(&mut head, Sink::Memory(ERROR_BODY_MAX_BYTES))?;
        match reply.status {
            200 => {}
            404 => return Err(StoreError::NotFound(id.to_owned())),
            _ => return Err(self.refused(&head, &reply)),
        }
        let dump_key = self.key(id, "fdr");
        let mut spool = self.spool()?;
        let mut get = Call::new("downloading the dump", "GET", &dump_key);
        let reply = self.call(&mut get, Sink::Spool(&mut spool))?;
        match reply.status {
            200 => {}
            404 => return Err(StoreError::NotFound(id.to_owned())),
            _ => return Err(self.refused(&get, &reply)),
        }
        spool
            .file
            .seek(SeekFrom::Start(0))
            .map_err(|source| StoreError::Io {
                op: "reading the downloaded dump",
                path: spool.path.clone(),
                source,
            })?;
        Ok(Box::new(spool))
    }

    fn warnings(&self) -> Vec<String> {
        // /tmp (sticky) is fine: spool files are created exclusively and not through a
        // symlink, and no one else may remove them.
        layout::dir_warning(
            &self.config.spool_dir,
            "the S3 store's spool directory",
            true,
        )
        .into_iter()
        .collect()
    }
}

/// A file in the spool directory, removed when dropped.
struct Spool {
    file: File,
    path: PathBuf,
}

impl Read for Spool {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Hashes and counts the bytes that reach the writer.
struct Hashing<W> {
    inner: W,
    sha256: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An object under the prefix.
#[derive(Debug, Clone, PartialEq)]
struct Object {
    /// Its key, less the prefix.
    name: String,
    bytes: u64,
    modified_unix_s: Option<u64>,
}

/// Objects sorted into incidents (dump and sidecar) and halves of incidents.
#[derive(Debug, Default, PartialEq)]
struct Pairing<'a> {
    /// Ids with both objects, sorted, with their dump's size.
    complete: Vec<(String, u64)>,
    /// Objects named like half an incident whose other half is missing.
    orphans: Vec<&'a Object>,
}

fn pair(objects: &[Object]) -> Pairing<'_> {
    use std::collections::BTreeMap;
    let mut halves: BTreeMap<&str, [Option<&Object>; 2]> = BTreeMap::new();
    for o in objects {
        let (id, i) = if let Some(id) = o.name.strip_suffix(".fdr") {
            (id, 0)
        } else if let Some(id) = o.name.strip_suffix(".json") {
            (id, 1)
        } else {
            continue;
        };
        if check_id(id).is_ok() {
            halves.entry(id).or_default()[i] = Some(o);
        }
    }
    let mut pairing = Pairing::default();
    for (id, [dump, sidecar]) in halves {
        match (dump, sidecar) {
            (Some(dump), Some(_)) => pairing.complete.push((id.to_owned(), dump.bytes)),
            (Some(o), None) | (None, Some(o)) => pairing.orphans.push(o),
            (None, None) => {}
        }
    }
    pairing
}

impl Pairing<'_> {
    /// The names of the orphans last modified `min_age` or more before `now_unix_s`.
    fn orphans_older_than(&self, now_unix_s: u64, min_age: Duration) -> Vec<&str> {
        self.orphans
            .iter()
            .filter(|o| {
                o.modified_unix_s
                    .is_some_and(|m| now_unix_s.saturating_sub(m) >= min_age.as_secs())
            })
            .map(|o| o.name.as_str())
            .collect()
    }
}

/// Who signs, and for what (AWS Signature Version 4).
struct Credentials<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    region: &'a str,
    service: &'a str,
}

impl Credentials<'_> {
    /// The `Authorization` header of a request: `path` as it is, before encoding; `query`
    /// as name-value pairs, before encoding; `headers` those signed (names in lower case,
    /// `host` and `x-amz-date` among them).
    fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload_sha256: &str,
        amz_date: &str,
    ) -> String {
        let (canonical, signed_headers) =
            canonical_request(method, path, query, headers, payload_sha256);
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{}", self.secret_access_key).into_bytes();
        for part in [date, self.region, self.service, "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes()).to_vec();
        }
        let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            self.access_key_id
        )
    }
}

/// SigV4's canonical request, and its signed-headers list.
fn canonical_request(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    payload_sha256: &str,
) -> (String, String) {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}",
        uri_encode(path, false),
        canonical_query(query)
    );
    (canonical, signed_headers)
}

/// The query, encoded and sorted, as signed and as sent.
fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-._~` as `%XX`; `/` too when
/// `encode_slash`.
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `20150830T123600Z`.
fn amz_date(unix_s: u64) -> String {
    let (days, rem) = (unix_s / 86_400, unix_s % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the Unix epoch of `2026-12-02T04:05:12.000Z` (S3's `LastModified`).
fn parse_iso8601(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, s) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// The contents of each `<tag>` element of `xml` (not nested in itself), in order.
fn xml_elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<Key>`, `<Key attr="..">`, `<Key/>`; not `<KeyMarker>`.
        let Some(end) = after.find('>') else { break };
        let head = &after[..end];
        if !(head.is_empty() || head.starts_with(char::is_whitespace) || head == "/") {
            rest = after;
            continue;
        }
        if head.ends_with('/') {
            out.push("");
            rest = &after[end + 1..];
            continue;
        }
        let body = &after[end + 1..];
        let Some(stop) = body.find(&close) else { break };
        out.push(&body[..stop]);
        rest = &body[stop + close.len()..];
    }
    out
}

/// The text of the first `<tag>` element of `xml`, unescaped.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    xml_elements(xml, tag).first().map(|t| xml_unescape(t))
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(end) = after.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// S3's `<Code>` in an error answer.
fn error_code(body: &[u8]) -> Option<String> {
    xml_text(&String::from_utf8_lossy(body), "Code")
}

fn status_text(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("(no reason given)")
}

/// An error and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AWS Signature Version 4 test suite's credentials (service `service`).
    const SUITE: Credentials<'static> = Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        service: "service",
    };
    /// The S3 documentation's examples' credentials.
    const S3_DOCS: Credentials<'static> = Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        service: "s3",
    };
    const S3_HOST: &str = "examplebucket.s3.amazonaws.com";

    #[test]
    fn signatures_match_the_sigv4_test_suite_get_vanilla() {
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ];
        let (canonical, signed) = canonical_request("GET", "/", &[], &headers, EMPTY_SHA256);
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "host;x-amz-date");
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            "the hash in the suite's string to sign"
        );
        assert_eq!(
            SUITE.authorization("GET", "/", &[], &headers, EMPTY_SHA256, "20150830T123600Z"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        // get-vanilla-query-order-key-case: the query is signed sorted.
        assert_eq!(
            SUITE.authorization(
                "GET",
                "/",
                &[("Param2", "value2"), ("Param1", "value1")],
                &headers,
                EMPTY_SHA256,
                "20150830T123600Z"
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    fn signature(authorization: &str) -> &str {
        authorization.rsplit_once("Signature=").unwrap().1
    }

    #[test]
    fn signatures_match_the_s3_documentation_examples() {
        let date = "20130524T000000Z";
        // GET Object, with a range.
        let headers = [
            ("host", S3_HOST),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", date),
        ];
        let (canonical, _) = canonical_request("GET", "/test.txt", &[], &headers, EMPTY_SHA256);
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let get = S3_DOCS.authorization("GET", "/test.txt", &[], &headers, EMPTY_SHA256, date);
        assert_eq!(
            get,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        // PUT Object: a signed payload, and a `$` in the key (encoded in the path).
        let body = "Welcome to Amazon S3.";
        let body_sha256 = hex(&Sha256::digest(body.as_bytes()));
        assert_eq!(
            body_sha256,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let headers = [
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", S3_HOST),
            ("x-amz-date", date),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", &body_sha256),
        ];
        let put =
            S3_DOCS.authorization("PUT", "/test$file.text", &[], &headers, &body_sha256, date);
        assert_eq!(
            signature(&put),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        // GET Bucket (list objects), the query out of order; and a subresource with no value.
        let headers = [
            ("host", S3_HOST),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", date),
        ];
        let list = S3_DOCS.authorization(
            "GET",
            "/",
            &[("prefix", "J"), ("max-keys", "2")],
            &headers,
            EMPTY_SHA256,
            date,
        );
        assert_eq!(
            signature(&list),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
        let lifecycle = S3_DOCS.authorization(
            "GET",
            "/",
            &[("lifecycle", "")],
            &headers,
            EMPTY_SHA256,
            date,
        );
        assert_eq!(
            signature(&lifecycle),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn uri_encoding_keeps_only_unreserved_bytes() {
        assert_eq!(uri_encode("/b/p q/é+~_.-", false), "/b/p%20q/%C3%A9%2B~_.-");
        assert_eq!(uri_encode("a/b=c&d", true), "a%2Fb%3Dc%26d");
        assert_eq!(
            canonical_query(&[("prefix", "inc/"), ("continuation-token", "1+a/b=")]),
            "continuation-token=1%2Ba%2Fb%3D&prefix=inc%2F"
        );
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(
            parse_iso8601("2015-08-30T12:36:00.000Z"),
            Some(1_440_938_160)
        );
        assert_eq!(parse_iso8601("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("2015-13-30T12:36:00Z"), None);
    }

    #[test]
    fn list_pages_and_errors_are_read() {
        let page = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>p/a.fdr</Key><LastModified>2015-08-30T12:36:00.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>10</Size></Contents>
<Contents><Key>p/a&amp;b.json</Key><Size>3</Size><Owner><ID>o</ID></Owner></Contents>
<NextContinuationToken>1&lt;2&#x2F;&#51;</NextContinuationToken><StartAfter/></ListBucketResult>"#;
        let contents = xml_elements(page, "Contents");
        assert_eq!(contents.len(), 2);
        assert_eq!(xml_text(contents[0], "Key").as_deref(), Some("p/a.fdr"));
        assert_eq!(xml_text(contents[0], "Size").as_deref(), Some("10"));
        assert_eq!(xml_text(contents[0], "ETag").as_deref(), Some("\"x\""));
        assert_eq!(xml_text(contents[1], "Key").as_deref(), Some("p/a&b.json"));
        assert_eq!(xml_text(page, "IsTruncated").as_deref(), Some("true"));
        assert_eq!(
            xml_text(page, "NextContinuationToken").as_deref(),
            Some("1<2/3")
        );
        // `<KeyCount>` is not `<Key>`; `<StartAfter/>` is empty.
        assert_eq!(xml_text(page, "StartAfter").as_deref(), Some(""));
        assert_eq!(xml_elements(page, "Key").len(), 2);
        assert_eq!(xml_text(page, "Missing"), None);
        let error = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
            <Message>The specified bucket does not exist</Message><BucketName>x</BucketName></Error>";
        assert_eq!(error_code(error).as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_unescape("a &bogus; & b &#65;"), "a &bogus; & b A");
    }

    fn object(name: &str, modified_unix_s: Option<u64>) -> Object {
        Object {
            name: name.into(),
            bytes: 1,
            modified_unix_s,
        }
    }

    #[test]
    fn objects_pair_into_incidents_and_old_halves_are_orphans() {
        let hour = 3600;
        let objects = [
            object("a.fdr", Some(0)),
            object("a.json", Some(0)),
            object("b.fdr", Some(0)), // an old dump without its sidecar
            object("c.fdr", Some(10 * hour - 5)), // being written now
            object("d.json", Some(0)), // a sidecar whose dump went
            object("notes.txt", Some(0)), // not ours
            object(".x.fdr", Some(0)), // not an id
        ];
        let p = pair(&objects);
        assert_eq!(p.complete, [("a".to_owned(), 1)]);
        assert_eq!(
            p.orphans_older_than(10 * hour, ORPHAN_MIN_AGE),
            ["b.fdr", "d.json"]
        );
    }

    fn meta(id: &str, t: u64, bytes: u64) -> IncidentMeta {
        IncidentMeta {
            id: id.into(),
            rule: "r".into(),
            condition: "r".into(),
            metric: "m".into(),
            value: 1.0,
            threshold: 0.0,
            values: vec![],
            time_unix_ms: t,
            host: "h".into(),
            pid: 1,
            service_version: None,
            bytes,
            cost: None,
        }
    }

    #[test]
    fn retention_keeps_the_newest_within_both_bounds() {
        let newest_first = [
            meta("d", 4, 100),
            meta("c", 3, 100),
            meta("b", 2, 100),
            meta("a", 1, 100),
        ];
        let r = |max_count, max_bytes| Retention {
            max_count,
            max_bytes,
        };
        assert_eq!(
            retention_victims(&newest_first, r(3, 250), None),
            ["b", "a"]
        );
        assert_eq!(retention_victims(&newest_first, r(3, 1000), None), ["a"]);
        assert_eq!(
            retention_victims(&newest_first, r(0, 0), None),
            ["c", "b", "a"]
        );
        assert!(retention_victims(&newest_first, r(10, 1000), None).is_empty());
    }

    #[test]
    fn urls_and_endpoints_are_checked() {
        let c = S3Config::from_url("http://127.0.0.1:9000/bucket/a/b/").unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.bucket.as_str(), c.prefix.as_str()),
            ("http://127.0.0.1:9000", "bucket", "a/b")
        );
        assert_eq!(c.region, "us-east-1");
        let c = S3Config::from_url("http://minio/incidents").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("incidents", ""));
        for (url, why) in [
            ("https://s3.amazonaws.com/b", "https is not supported"),
            ("s3://b/p", "expected http://"),
            ("http://host:9000/", "no bucket"),
            ("http://host:port/b", "bad port"),
        ] {
            let e = S3Config::from_url(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        let e = Endpoint::parse("http://store.local:80/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str()),
            ("store.local", 80, "store.local")
        );

        let good = S3Config {
            access_key_id: "k".into(),
            secret_access_key: "s3cret".into(),
            ..S3Config::from_url("http://127.0.0.1:9/b").unwrap()
        };
        assert!(!format!("{good:?}").contains("s3cret"));
        S3Store::new(good.clone()).unwrap();
        for (config, why) in [
            (
                S3Config {
                    bucket: "a/b".into(),
                    ..good.clone()
                },
                "bucket `a/b`",
            ),
            (
                S3Config {
                    secret_access_key: String::new(),
                    ..good.clone()
                },
                "credentials",
            ),
            (
                S3Config {
                    endpoint: "http://h/p".into(),
                    ..good.clone()
                },
                "no path",
            ),
            (
                S3Config {
                    list_page_keys: 0,
                    ..good.clone()
                },
                "list_page_keys",
            ),
        ] {
            let e = S3Store::new(config).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn remote_errors_say_what_where_and_why() {
        let e = StoreError::Remote {
            op: "uploading the dump",
            object: "s3://b/p/x.fdr".into(),
            status: Some(403),
            code: Some("SignatureDoesNotMatch".into()),
            message: "The request signature we calculated does not match".into(),
        };
        assert_eq!(
            e.to_string(),
            "incident store: uploading the dump s3://b/p/x.fdr: HTTP 403 SignatureDoesNotMatch: \
             The request signature we calculated does not match"
        );
        let e = StoreError::Remote {
            op: "listing",
            object: "s3://b/".into(),
            status: None,
            code: None,
            message: "connecting to 127.0.0.1:9: Connection refused".into(),
        };
        assert!(
            e.to_string()
                .ends_with("s3://b/: no answer: connecting to 127.0.0.1:9: Connection refused")
        );
    }
}
