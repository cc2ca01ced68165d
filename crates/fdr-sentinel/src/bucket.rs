//! Incidents in an object store, through Apache Arrow's `object_store`: Amazon S3 and
//! S3-compatible servers (feature `aws`), Google Cloud Storage (`gcp`), Azure Blob Storage
//! (`azure`) and object_store's local file system store (`local`).
//!
//! A store is named by a URL, `s3://bucket/prefix`, `gs://bucket/prefix`,
//! `az://container/prefix` or `file:///dir`; an incident is two objects, `PREFIX/ID.fdr`
//! (the dump) and `PREFIX/ID.json` (the sidecar). Credentials come from the provider's
//! standard chain, as object_store reads it: for S3 the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`
//! and `AWS_ROLE_ARN`, as EKS's IRSA sets them), ECS task credentials, then the instance
//! metadata service; for GCS and Azure their application default credentials. Every
//! `AWS_*`, `GOOGLE_*` or `AZURE_*` variable object_store knows applies (an endpoint such as
//! `AWS_ENDPOINT_URL` for MinIO; `AWS_ALLOW_HTTP=true` for a plain-HTTP one), and
//! [`BucketConfig::options`] override them in code. HTTPS is the default; a private CA is
//! trusted with [`BucketConfig::root_certificates`].
//!
//! The semantics are [`DirStore`](crate::DirStore)'s:
//!
//! - **Complete or invisible.** An object exists once all of it arrived, never in part
//!   (a single `PUT`, or a multipart upload completed only after its last part). The dump
//!   is uploaded first and the sidecar last, and [`IncidentStore::list`] shows only
//!   incidents with both, so an upload cut short is never seen. After a failure the store
//!   deletes what it uploaded and aborts an unfinished multipart upload (best effort; what
//!   a dead server kept is swept by the retention of a later `put`, once an hour old).
//! - **Bounded memory.** The dump closure writes into a spool file (in
//!   [`BucketConfig::spool_dir`], removed afterwards), so the flight recorder is read at
//!   disk speed, never held back by the network. A dump of at most
//!   [`BucketConfig::part_bytes`] is then sent in one `PUT`; a larger one as a multipart
//!   upload, read from the spool one part at a time with at most
//!   [`MAX_PARTS_IN_FLIGHT`] parts in flight. [`IncidentStore::open`] streams the download
//!   into a spool file and returns it (removed when the reader is dropped).
//! - **Retention** by count and bytes, after each `put`: the oldest incidents past either
//!   bound go, sidecar first (it is what makes an incident visible); the newest is kept.
//! - **Errors name the store's error**: [`StoreError::Remote`] carries what was being done,
//!   the object's URL, object_store's error kind as its code, and object_store's message
//!   with its causes (the provider's status and error code among them).
//!
//! The store owns a small current-thread tokio runtime; its methods block (the sentinel's
//! dump thread is synchronous). Called from inside an async runtime, a method runs on a
//! scoped thread instead of blocking that runtime's driver, but it still blocks the caller:
//! use `spawn_blocking`. Every request must be done within [`BucketConfig::timeout`], and
//! is retried at most [`MAX_RETRIES`] times within it.

use std::fmt;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use object_store::path::Path as Key;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::layout;
use crate::store::Counting;
use crate::store::{
    DumpFn, IncidentMeta, IncidentStore, Listing, Retention, SIDECAR_MAX_BYTES, StoreError,
    check_id, retention_victims,
};

/// Half an incident older than this (a dump without its sidecar, or the reverse) is what a
/// failed `put` left behind, not one being written: retention deletes it.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);
/// Objects listed under the prefix before giving up (a prefix shared with something else).
pub const MAX_LISTED_OBJECTS: usize = 1_000_000;
/// Parts of a multipart upload sent at once; memory is at most this many parts plus one.
pub const MAX_PARTS_IN_FLIGHT: usize = 2;
/// Retries of a failed request (within [`BucketConfig::timeout`]).
pub const MAX_RETRIES: usize = 3;
/// S3's smallest part of a multipart upload (but the last).
pub const MIN_PART_BYTES: usize = 5 << 20;

/// Where and how a [`BucketStore`] keeps incidents.
///
/// ```
/// use fdr_sentinel::{BucketConfig, Retention};
///
/// let config = BucketConfig {
///     retention: Retention { max_count: 50, max_bytes: 4 << 30 },
///     ..BucketConfig::from_url("s3://incidents/checkout-service").unwrap()
/// };
/// assert_eq!(config.url, "s3://incidents/checkout-service");
/// assert!(BucketConfig::from_url("ftp://incidents").is_err());
/// ```
#[derive(Clone, PartialEq)]
pub struct BucketConfig {
    /// `s3://bucket[/prefix]`, `gs://bucket[/prefix]`, `az://container[/prefix]` or
    /// `file:///dir`. Keys are `PREFIX/ID.fdr` and `PREFIX/ID.json`.
    pub url: String,
    /// object_store's configuration keys and values for the provider, over what the
    /// environment says: `aws_endpoint`, `aws_region`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_session_token`, `aws_allow_http`, `google_service_account`,
    /// `azure_storage_account_name`, ... (an unknown key is an error at
    /// [`BucketStore::new`]). `Debug` shows secrets redacted.
    pub options: Vec<(String, String)>,
    /// A PEM file of root certificates to trust besides the system's (a private CA).
    pub root_certificates: Option<PathBuf>,
    /// Incidents kept.
    pub retention: Retention,
    /// Every request must be done within this (default 60 s), retries included.
    pub timeout: Duration,
    /// Dumps larger than this go as multipart uploads of parts this size (default 8 MiB,
    /// at least [`MIN_PART_BYTES`]).
    pub part_bytes: usize,
    /// Where a dump is spooled before its upload, and after its download by
    /// [`IncidentStore::open`] (default: the system's temporary directory).
    pub spool_dir: PathBuf,
    /// The mode of spool files (default 0o600, [`crate::DEFAULT_FILE_MODE`]). They are
    /// created exclusively, never through a symlink.
    pub file_mode: u32,
}

impl Default for BucketConfig {
    /// No URL: set one (or start from [`BucketConfig::from_url`]).
    fn default() -> Self {
        BucketConfig {
            url: String::new(),
            options: Vec::new(),
            root_certificates: None,
            retention: Retention::default(),
            timeout: Duration::from_secs(60),
            part_bytes: 8 << 20,
            spool_dir: std::env::temp_dir(),
            file_mode: crate::DEFAULT_FILE_MODE,
        }
    }
}

/// Whether an option's value may be a secret (never printed).
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "token", "password", "key", "sas", "credential"]
        .iter()
        .any(|s| k.contains(s))
        && !k.ends_with("key_id")
}

impl fmt::Debug for BucketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: Vec<(&str, &str)> = self
            .options
            .iter()
            .map(|(k, v)| {
                let v = if is_secret(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("BucketConfig")
            .field("url", &self.url)
            .field("options", &options)
            .field("root_certificates", &self.root_certificates)
            .field("retention", &self.retention)
            .field("timeout", &self.timeout)
            .field("part_bytes", &self.part_bytes)
            .field("spool_dir", &self.spool_dir)
            .field("file_mode", &format_args!("{:#o}", self.file_mode))
            .finish()
    }
}

/// The URL schemes of the stores this build has.
pub fn schemes() -> Vec<&'static str> {
    let mut s = Vec::new();
    if cfg!(feature = "aws") {
        s.push("s3://");
    }
    if cfg!(feature = "gcp") {
        s.push("gs://");
    }
    if cfg!(feature = "azure") {
        s.push("az://");
    }
    if cfg!(feature = "local") {
        s.push("file://");
    }
    s
}

/// Why a bucket URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No `://`.
    #[error("expected SCHEME://BUCKET[/PREFIX] with one of {schemes:?}")]
    NoScheme {
        /// The schemes this build has.
        schemes: Vec<&'static str>,
    },
    /// A scheme other than `s3`, `gs`, `az` and `file`.
    #[error("unknown scheme `{scheme}://`: expected s3://, gs://, az:// or file://")]
    UnknownScheme {
        /// The scheme given.
        scheme: String,
    },
    /// A known scheme whose store this build was compiled without.
    #[error("this build has no {scheme}:// store: enable fdr-sentinel's `{feature}` feature")]
    NotInThisBuild {
        /// The scheme given.
        scheme: String,
        /// The feature that adds its store.
        feature: &'static str,
    },
    /// A `file://` URL whose directory is not absolute.
    #[error("expected file:///absolute/dir")]
    FileNotAbsolute,
    /// No bucket after the scheme.
    #[error("no bucket: expected {scheme}://BUCKET[/PREFIX]")]
    NoBucket {
        /// The scheme given.
        scheme: String,
    },
}

/// A URL split: scheme, bucket (or the directory of `file://`), prefix.
fn split_url(url: &str) -> Result<(&str, &str, &str), UrlError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| UrlError::NoScheme { schemes: schemes() })?;
    let known = ["s3", "gs", "az", "file"];
    if !known.contains(&scheme) {
        return Err(UrlError::UnknownScheme {
            scheme: scheme.to_owned(),
        });
    }
    if !schemes().contains(&&url[..scheme.len() + 3]) {
        let feature = match scheme {
            "s3" => "aws",
            "gs" => "gcp",
            "az" => "azure",
            _ => "local",
        };
        return Err(UrlError::NotInThisBuild {
            scheme: scheme.to_owned(),
            feature,
        });
    }
    if scheme == "file" {
        if !rest.starts_with('/') {
            return Err(UrlError::FileNotAbsolute);
        }
        return Ok((scheme, rest, ""));
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(UrlError::NoBucket {
            scheme: scheme.to_owned(),
        });
    }
    Ok((scheme, bucket, prefix.trim_matches('/')))
}

impl BucketConfig {
    /// The defaults, with `url` checked (its scheme must be one this build has).
    pub fn from_url(url: &str) -> Result<BucketConfig, UrlError> {
        split_url(url)?;
        Ok(BucketConfig {
            url: url.to_owned(),
            ..BucketConfig::default()
        })
    }
}

/// Incidents in an object store: dump, then sidecar, each complete or absent; only
/// incidents with both are listed; retention by count and bytes after each `put`.
///
/// ```no_run
/// use fdr_sentinel::{BucketConfig, BucketStore, Rule, Sentinel};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Credentials from the environment, web identity, ECS or the instance's role.
/// let store = BucketStore::new(BucketConfig::from_url("s3://incidents/checkout")?)?;
/// let sentinel = Sentinel::builder()
///     .rule(Rule::parse("slow: fdr_sched_latency_ns p99 > 20ms for 3")?)
///     .store(store)
///     .start()?;
/// # drop(sentinel);
/// # Ok(()) }
/// ```
///
/// How it writes, reads and bounds its memory: [the module docs](crate::bucket).
pub struct BucketStore {
    config: BucketConfig,
    store: Arc<dyn ObjectStore>,
    /// The prefix, as a key (empty for the top level).
    prefix: Key,
    /// `scheme://bucket/` for messages.
    base_url: String,
    /// Always there until the store is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// The next spool file's number.
    next_spool: AtomicU64,
}

impl Drop for BucketStore {
    fn drop(&mut self) {
        // Without blocking: dropping a runtime may not block inside another one (a store
        // dropped by an async service). Every request's tasks ended with its `block_on`.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for BucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// object_store's error, for [`StoreError::Remote`]: its kind as the code, its message
/// with every cause.
fn remote(op: &'static str, object: String, e: &object_store::Error) -> StoreError {
    let code = match e {
        object_store::Error::NotFound { .. } => "NotFound",
        object_store::Error::Generic { .. } => "Generic",
        object_store::Error::PermissionDenied { .. } => "PermissionDenied",
        object_store::Error::Unauthenticated { .. } => "Unauthenticated",
        object_store::Error::AlreadyExists { .. } => "AlreadyExists",
        object_store::Error::Precondition { .. } => "Precondition",
        object_store::Error::NotSupported { .. } => "NotSupported",
        object_store::Error::InvalidPath { .. } => "InvalidPath",
        _ => "Other",
    };
    StoreError::Remote {
        op,
        object,
        status: None,
        code: Some(code.to_owned()),
        message: chain(e),
    }
}

/// An error and its causes, `: `-separated, each said once (object_store's messages often
/// repeat their source's).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    for _ in 0..16 {
        let Some(cause) = source else { break };
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

/// The variables named `PREFIX...`, lowercased as object_store's configuration keys.
#[allow(dead_code, reason = "used by the providers this build has")]
fn client_vars(prefix: &str) -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// The store for `config`'s URL, over the environment and `options`.
fn build(config: &BucketConfig, http: Http) -> Result<(Arc<dyn ObjectStore>, String), String> {
    let (scheme, bucket, _) = split_url(&config.url).map_err(|e| e.to_string())?;
    let unknown = |k: &str| format!("option `{k}`: not a {scheme}:// configuration key");
    let _ = (&http, &unknown, bucket);
    match scheme {
        #[cfg(feature = "aws")]
        "s3" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let mut b = AmazonS3Builder::from_env()
                .with_url(format!("s3://{bucket}"))
                .with_client_options(http.client)
                .with_retry(http.retry);
            // The environment's client settings (`AWS_ALLOW_HTTP`, ...), which the
            // client options just set replaced.
            for (k, v) in client_vars("AWS_") {
                if let Ok(key @ AmazonS3ConfigKey::Client(_)) = k.parse::<AmazonS3ConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            for (k, v) in &config.options {
                let key: AmazonS3ConfigKey = k.parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            let store = b.build().map_err(|e| chain(&e))?;
            Ok((Arc::new(store), format!("s3://{bucket}/")))
        }
        #[cfg(feature = "gcp")]
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(format!("gs://{bucket}"))
                .with_client_options(http.client)
                .with_retry(http.retry);
            // The environment's client settings (`GOOGLE_ALLOW_HTTP`, ...), which the
            // client options just set replaced.
            for (k, v) in client_vars("GOOGLE_") {
                if let Ok(key @ GoogleConfigKey::Client(_)) = k.parse::<GoogleConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            for (k, v) in &config.options {
                let key: GoogleConfigKey = k.parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            let store = b.build().map_err(|e| chain(&e))?;
            Ok((Arc::new(store), format!("gs://{bucket}/")))
        }
        #[cfg(feature = "azure")]
        "az" => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(format!("az://{bucket}"))
                .with_client_options(http.client)
                .with_retry(http.retry);
            // The environment's client settings (`AZURE_ALLOW_HTTP`, ...), which the
            // client options just set replaced.
            for (k, v) in client_vars("AZURE_") {
                if let Ok(key @ AzureConfigKey::Client(_)) = k.parse::<AzureConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            for (k, v) in &config.options {
                let key: AzureConfigKey = k.parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            let store = b.build().map_err(|e| chain(&e))?;
            Ok((Arc::new(store), format!("az://{bucket}/")))
        }
        #[cfg(feature = "local")]
        "file" => {
            if let Some((k, _)) = config.options.first() {
                return Err(unknown(k));
            }
            let dir = std::path::Path::new(bucket);
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(
                &mut builder,
                layout::dir_mode(config.file_mode),
            );
            builder
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| chain(&e))?;
            Ok((
                Arc::new(store),
                format!("file://{}/", bucket.trim_end_matches('/')),
            ))
        }
        _ => Err(format!("this build has no {scheme}:// store")),
    }
}

/// The HTTP client and retry settings of the cloud stores (a build with only the local
/// store has none).
struct Http {
    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    client: ClientOptions,
    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    retry: RetryConfig,
}

impl Http {
    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    fn new(config: &BucketConfig) -> Result<Http, StoreError> {
        let bad = |what: &str, why: &str| {
            StoreError::Other(format!("object store `{}`: {what}: {why}", config.url))
        };
        let mut client = ClientOptions::new()
            .with_timeout(config.timeout)
            .with_connect_timeout(config.timeout.min(Duration::from_secs(10)));
        if let Some(path) = &config.root_certificates {
            let pem = fs::read(path).map_err(|source| StoreError::Io {
                op: "reading root certificates",
                path: path.clone(),
                source,
            })?;
            let certificates = object_store::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(&format!("root certificates {}", path.display()), &chain(&e)))?;
            if certificates.is_empty() {
                return Err(bad(
                    &format!("root certificates {}", path.display()),
                    "no PEM certificate in the file",
                ));
            }
            for c in certificates {
                client = client.with_root_certificate(c);
            }
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: MAX_RETRIES,
            retry_timeout: config.timeout,
        };
        Ok(Http { client, retry })
    }

    #[cfg(not(any(feature = "aws", feature = "gcp", feature = "azure")))]
    fn new(config: &BucketConfig) -> Result<Http, StoreError> {
        match &config.root_certificates {
            Some(path) => Err(StoreError::Other(format!(
                "object store `{}`: root certificates {}: this build has no HTTPS store \
                 (features aws, gcp, azure)",
                config.url,
                path.display()
            ))),
            None => Ok(Http {}),
        }
    }
}

impl BucketStore {
    /// A store as `config` says. Checks the configuration, reads the root certificates and
    /// creates the spool directory; it sends nothing (a wrong bucket or credentials show at
    /// the first request).
    pub fn new(config: BucketConfig) -> Result<BucketStore, StoreError> {
        let bad = |what: &str, why: &str| {
            StoreError::Other(format!("object store `{}`: {what}: {why}", config.url))
        };
        if config.timeout.is_zero() {
            return Err(bad("timeout", "must be above zero"));
        }
        if config.part_bytes < MIN_PART_BYTES {
            return Err(bad(
                "part_bytes",
                &format!("{}: at least {MIN_PART_BYTES}", config.part_bytes),
            ));
        }
        layout::check_file_mode(config.file_mode)
            .map_err(|why| bad("spool files", &why.to_string()))?;
        let http = Http::new(&config)?;
        let (_, _, prefix) = split_url(&config.url).map_err(|e| bad("url", &e.to_string()))?;
        let prefix = Key::parse(prefix).map_err(|e| bad("prefix", &e.to_string()))?;
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
            .map_err(|e| bad("starting its runtime", &e.to_string()))?;
        // Building a client may look for a runtime (reqwest's resolver): on ours.
        let built = {
            let _enter = runtime.enter();
            build(&config, http)
        };
        let (store, base_url) = built.map_err(|e| bad("configuration", &e))?;
        Ok(BucketStore {
            config,
            store,
            prefix,
            base_url,
            runtime: Some(runtime),
            next_spool: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BucketConfig {
        &self.config
    }

    /// The object store itself, for readers that use object_store's API directly (`fdr
    /// query` reads Parquet tables through it), with the key prefix of the URL and the
    /// URL's `scheme://bucket/`. Its requests may run on any tokio runtime.
    pub fn object_store(&self) -> (Arc<dyn ObjectStore>, &Key, &str) {
        (Arc::clone(&self.store), &self.prefix, &self.base_url)
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

    fn key(&self, id: &str, ext: &str) -> Key {
        self.prefix.clone().join(format!("{id}.{ext}"))
    }

    /// The object's URL, for messages.
    fn url_of(&self, key: &Key) -> String {
        format!("{}{key}", self.base_url)
    }

    /// Every object directly under the prefix (names relative to it), with sizes and ages.
    async fn objects(&self) -> Result<Vec<Object>, StoreError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let mut stream = self.store.list(prefix);
        let mut objects = Vec::new();
        let mut seen = 0usize;
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| remote("listing", self.url_of(&self.prefix), &e))?;
            seen += 1;
            if seen > MAX_LISTED_OBJECTS {
                return Err(StoreError::Remote {
                    op: "listing",
                    object: self.url_of(&self.prefix),
                    status: None,
                    code: None,
                    message: format!(
                        "more than {MAX_LISTED_OBJECTS} objects under the prefix; is it shared?"
                    ),
                });
            }
            let Some(mut parts) = meta.location.prefix_match(&self.prefix) else {
                continue;
            };
            let (Some(name), None) = (parts.next(), parts.next()) else {
                // Deeper: another prefix's, not ours.
                continue;
            };
            objects.push(Object {
                name: name.as_ref().to_owned(),
                bytes: meta.size,
                modified_unix_s: u64::try_from(meta.last_modified.timestamp()).ok(),
            });
        }
        Ok(objects)
    }

    /// The incidents among `objects`, with their sidecars read.
    async fn read_listing(&self, objects: &[Object]) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        for (id, bytes) in pair(objects).complete {
            let key = self.key(&id, "json");
            let read = async {
                let got = self.store.get(&key).await?;
                if got.meta.size > SIDECAR_MAX_BYTES {
                    return Ok(Err(format!(
                        "a sidecar of {} bytes, over {SIDECAR_MAX_BYTES}",
                        got.meta.size
                    )));
                }
                Ok::<_, object_store::Error>(Ok(got.bytes().await?))
            };
            let body = match read.await {
                Ok(Ok(body)) => body,
                Ok(Err(why)) => {
                    listing.unreadable.push((id, why));
                    continue;
                }
                // Removed since the listing (by another writer's retention).
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(remote("reading the sidecar", self.url_of(&key), &e)),
            };
            let read = serde_json::from_slice(&body)
                .map_err(|e| e.to_string())
                .and_then(|v| IncidentMeta::from_json(&v).map_err(|e| e.to_string()));
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
    async fn retain(&self) -> Result<(), StoreError> {
        let objects = self.objects().await?;
        let listing = self.read_listing(&objects).await?;
        let mut doomed = Vec::new();
        for id in retention_victims(&listing.incidents, self.config.retention, None) {
            doomed.push(self.key(id, "json"));
            doomed.push(self.key(id, "fdr"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for name in pair(&objects).orphans_older_than(now, ORPHAN_MIN_AGE) {
            doomed.push(self.prefix.clone().join(name));
        }
        let mut first_error = None;
        for key in doomed {
            if let Err(e) = self.delete(&key, "deleting past the retention").await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn delete(&self, key: &Key, op: &'static str) -> Result<(), StoreError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote(op, self.url_of(key), &e)),
        }
    }

    /// Uploads the spooled dump: one `PUT` up to a part's size, a multipart upload above.
    async fn upload_dump(
        &self,
        key: &Key,
        spool: &mut Spool,
        bytes: u64,
    ) -> Result<(), StoreError> {
        let op = "uploading the dump";
        let part = self.config.part_bytes;
        let read_err = |source: io::Error| StoreError::Io {
            op: "reading the spooled dump",
            path: spool.path.clone(),
            source,
        };
        let path = spool.path.clone();
        let file = &mut spool.file;
        file.seek(SeekFrom::Start(0))
            .map_err(|source| StoreError::Io {
                op: "reading the spooled dump",
                path: path.clone(),
                source,
            })?;
        if bytes <= part as u64 {
            let mut body = Vec::with_capacity(bytes as usize);
            file.read_to_end(&mut body)
                .map_err(|source| StoreError::Io {
                    op: "reading the spooled dump",
                    path: path.clone(),
                    source,
                })?;
            return self
                .store
                .put(key, PutPayload::from(body))
                .await
                .map(drop)
                .map_err(|e| remote(op, self.url_of(key), &e));
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| remote(op, self.url_of(key), &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        let mut buf = vec![0u8; part];
        let mut sent = 0u64;
        let failed = loop {
            if sent == bytes {
                break None;
            }
            let n = match read_full(file, &mut buf) {
                Ok(0) => break Some(read_err(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => n,
                Err(e) => break Some(read_err(e)),
            };
            if let Err(e) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                break Some(remote(op, self.url_of(key), &e));
            }
            writer.write(&buf[..n]);
            sent += n as u64;
        };
        match failed {
            None => writer
                .finish()
                .await
                .map(drop)
                .map_err(|e| remote(op, self.url_of(key), &e)),
            Some(e) => {
                // Parts already sent are discarded with the upload.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// A new spool file.
    fn spool(&self) -> Result<Spool, StoreError> {
        let (file, path) = layout::create_temp(
            &self.config.spool_dir,
            "fdr-bucket",
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
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl IncidentStore for BucketStore {
    fn put(&self, meta: &IncidentMeta, dump: &mut DumpFn<'_>) -> Result<IncidentMeta, StoreError> {
        check_id(&meta.id)?;
        let mut spool = self.spool()?;
        let bytes = {
            let mut out = Counting {
                inner: BufWriter::with_capacity(1 << 20, &mut spool.file),
                written: 0,
            };
            let result = dump(&mut out);
            let written = out.written;
            result
                .and_then(|_| out.inner.flush())
                .map_err(|source| StoreError::Dump { written, source })?;
            written
        };
        let dump_key = self.key(&meta.id, "fdr");
        let sidecar_key = self.key(&meta.id, "json");
        let stored = IncidentMeta {
            bytes,
            ..meta.clone()
        };
        let json = serde_json::to_vec_pretty(&stored.to_json()).unwrap_or_default();
        self.block_on(async {
            if let Err(e) = self.upload_dump(&dump_key, &mut spool, bytes).await {
                // A `PUT` whose answer was lost may still have landed.
                let _ = self.delete(&dump_key, "cleaning up").await;
                return Err(e);
            }
            drop(spool);
            if let Err(e) = self.store.put(&sidecar_key, PutPayload::from(json)).await {
                let e = remote("uploading the sidecar", self.url_of(&sidecar_key), &e);
                let _ = self.delete(&sidecar_key, "cleaning up").await;
                let _ = self.delete(&dump_key, "cleaning up").await;
                return Err(e);
            }
            self.retain().await.map_err(|e| {
                StoreError::Other(format!(
                    "incident `{}` was stored, but applying the retention failed: {e}",
                    meta.id
                ))
            })
        })?;
        Ok(stored)
    }

    fn list(&self) -> Result<Listing, StoreError> {
        self.block_on(async { self.read_listing(&self.objects().await?).await })
    }

    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        check_id(id)?;
        let mut spool = self.spool()?;
        self.block_on(async {
            // Visible only with its sidecar.
            let sidecar_key = self.key(id, "json");
            match self.store.head(&sidecar_key).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(StoreError::NotFound(id.to_owned()));
                }
                Err(e) => return Err(remote("opening", self.url_of(&sidecar_key), &e)),
            }
            let dump_key = self.key(id, "fdr");
            let op = "downloading the dump";
            let got = match self.store.get(&dump_key).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(StoreError::NotFound(id.to_owned()));
                }
                Err(e) => return Err(remote(op, self.url_of(&dump_key), &e)),
            };
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| remote(op, self.url_of(&dump_key), &e))?;
                spool
                    .file
                    .write_all(&chunk)
                    .map_err(|source| StoreError::Io {
                        op: "writing the downloaded dump",
                        path: spool.path.clone(),
                        source,
                    })?;
            }
            Ok(())
        })?;
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
            "the object store's spool directory",
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn urls_are_checked_and_name_the_missing_feature() {
        let ok = |u: &str| BucketConfig::from_url(u).map(|c| c.url);
        let err = |u: &str| ok(u).unwrap_err().to_string();
        if cfg!(feature = "aws") {
            assert_eq!(ok("s3://b/p/q").unwrap(), "s3://b/p/q");
            assert_eq!(split_url("s3://b/p/q/").unwrap(), ("s3", "b", "p/q"));
            assert_eq!(split_url("s3://b").unwrap(), ("s3", "b", ""));
            assert_eq!(
                ok("s3:///p").unwrap_err(),
                UrlError::NoBucket {
                    scheme: "s3".into()
                }
            );
            assert!(err("s3:///p").contains("no bucket"));
        }
        if !cfg!(feature = "gcp") {
            assert_eq!(
                ok("gs://b").unwrap_err(),
                UrlError::NotInThisBuild {
                    scheme: "gs".into(),
                    feature: "gcp"
                }
            );
            let e = err("gs://b");
            assert!(e.contains("enable fdr-sentinel's `gcp` feature"), "{e}");
        }
        assert!(err("ftp://b").contains("unknown scheme `ftp://`"));
        assert!(matches!(ok("b/p").unwrap_err(), UrlError::NoScheme { .. }));
        assert!(err("b/p").contains("expected SCHEME://"));
        if cfg!(feature = "local") {
            assert_eq!(ok("file://rel/dir").unwrap_err(), UrlError::FileNotAbsolute);
            assert!(err("file://rel/dir").contains("absolute"));
        }
    }

    #[test]
    fn secrets_are_never_printed() {
        let config = BucketConfig {
            options: vec![
                ("aws_access_key_id".into(), "AKIAEXAMPLE".into()),
                ("aws_secret_access_key".into(), "very-secret".into()),
                ("aws_session_token".into(), "also-secret".into()),
                ("azure_storage_sas_key".into(), "sas-secret".into()),
            ],
            ..BucketConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        for secret in ["very-secret", "also-secret", "sas-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn error_chains_say_each_cause_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl fmt::Display for E {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "put failed: HTTP 403",
            Some(Box::new(E(
                "HTTP 403",
                Some(Box::new(E("InvalidAccessKeyId", None))),
            ))),
        );
        assert_eq!(chain(&e), "put failed: HTTP 403: InvalidAccessKeyId");
    }
}
