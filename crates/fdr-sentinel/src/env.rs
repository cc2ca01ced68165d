//! Configuration from the environment, so operations can tune the sentinel without a
//! rebuild. Each variable set overrides what the code configured:
//!
//! | variable | example | meaning |
//! |---|---|---|
//! | `FDR_SENTINEL_RULES` | `slow: fdr_sched_latency_ns p99 > 20ms for 3; leak: fdr_tasks_alive growth > 1000` | the rules (replacing the code's), `;`-separated ([`Rule::parse`]) |
//! | `FDR_SENTINEL_INTERVAL` | `5s` | sampling interval |
//! | `FDR_SENTINEL_DIR` | `/var/lib/app/incidents` | incident directory |
//! | `FDR_SENTINEL_URL` | `s3://bucket/svc/incidents` | incidents in an object store: `s3://`, `gs://`, `az://` or `file:///dir` (features `aws`, `gcp`, `azure`, `local`) |
//! | `AWS_*`, `GOOGLE_*`, `AZURE_*` | `AWS_ENDPOINT_URL=https://minio:9000` | the object store's settings and credentials, as object_store reads them (read only when `FDR_SENTINEL_URL` is set) |
//! | `FDR_SENTINEL_CA_FILE` | `/etc/ssl/private-ca.pem` | root certificates (PEM) the object store trusts besides the system's |
//! | `FDR_SENTINEL_RETAIN_COUNT` | `20` | incidents kept (in the directory or the object store) |
//! | `FDR_SENTINEL_RETAIN_BYTES` | `1GiB` | bytes of dumps kept |
//! | `FDR_SENTINEL_COOLDOWN` | `1m` | at least this long between any two dumps |
//! | `FDR_SENTINEL_MAX_DUMPS` | `10 per 1h` | at most N dumps per window, across rules |
//! | `FDR_SENTINEL_SERVICE_VERSION` | `1.4.2` | written into each incident |
//! | `FDR_SENTINEL_SNAPSHOT_WAIT` | `90s` | how long a trigger waits for the flight recorder while another snapshot is written |
//! | `FDR_SENTINEL_FILE_MODE` | `0640` | the mode (octal) of the dumps, sidecars and spool files the store creates (default `0600`) |
//!
//! `FDR_SENTINEL_DIR` and `FDR_SENTINEL_URL` each replace the store the code chose; set one
//! of them at most. A URL whose store this build lacks is an error naming the feature (not
//! ignored), so a build that cannot honour it says so at start.

use crate::layout::FileModeError;
use crate::rule::{Rule, RuleError, ValueError, parse_bytes, parse_duration};
use crate::sentinel::{Error, SentinelBuilder};

impl SentinelBuilder {
    /// Applies the `FDR_SENTINEL_*` variables that are set (see [`crate::env`]); a value
    /// that cannot be used is an error naming the variable.
    pub fn from_env(self) -> Result<Self, Error> {
        self.with_vars(|k| std::env::var(k).ok())
    }

    /// [`SentinelBuilder::from_env`] over any source of variables.
    pub fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let bad = |var: &'static str, value: &str, reason: EnvProblem| Error::Env {
            var,
            value: value.to_owned(),
            reason,
        };
        if let Some(v) = var("FDR_SENTINEL_RULES") {
            let rules: Result<Vec<Rule>, _> = v
                .split(';')
                .filter(|r| !r.trim().is_empty())
                .map(Rule::parse)
                .collect();
            self.rules =
                rules.map_err(|e| bad("FDR_SENTINEL_RULES", &v, EnvProblem::Rule(Box::new(e))))?;
        }
        if let Some(v) = var("FDR_SENTINEL_INTERVAL") {
            self.interval = parse_duration(&v)
                .map_err(|e| bad("FDR_SENTINEL_INTERVAL", &v, EnvProblem::Value(e)))?;
        }
        let mut retention = self.store.retention_mut().map(|r| *r).unwrap_or_default();
        let mut retention_set = None;
        if let Some(v) = var("FDR_SENTINEL_RETAIN_COUNT") {
            retention.max_count = v
                .parse()
                .map_err(|_| bad("FDR_SENTINEL_RETAIN_COUNT", &v, EnvProblem::NotAWholeNumber))?;
            retention_set = Some("FDR_SENTINEL_RETAIN_COUNT");
        }
        if let Some(v) = var("FDR_SENTINEL_RETAIN_BYTES") {
            retention.max_bytes = parse_bytes(&v)
                .map_err(|e| bad("FDR_SENTINEL_RETAIN_BYTES", &v, EnvProblem::Value(e)))?;
            retention_set = Some("FDR_SENTINEL_RETAIN_BYTES");
        }
        for old in ["FDR_SENTINEL_S3_URL", "FDR_SENTINEL_S3_REGION"] {
            if let Some(v) = var(old) {
                return Err(bad(old, &v, EnvProblem::NoLongerRead));
            }
        }
        let dir = var("FDR_SENTINEL_DIR");
        let url = var("FDR_SENTINEL_URL");
        if let (Some(_), Some(url)) = (&dir, &url) {
            return Err(bad("FDR_SENTINEL_URL", url, EnvProblem::TwoStores));
        }
        if let Some(v) = dir {
            self = self.dir(v, retention);
        } else if let Some(url) = url {
            self = self.bucket_from_env(&url, retention, &var)?;
        } else if let Some(retain_var) = retention_set {
            if let Some(r) = self.store.retention_mut() {
                *r = retention;
            } else {
                return Err(bad(retain_var, "", EnvProblem::RetentionWithoutStore));
            }
        }
        if let Some(v) = var("FDR_SENTINEL_CA_FILE") {
            self = self.ca_file_from_env(&v)?;
        }
        if let Some(v) = var("FDR_SENTINEL_COOLDOWN") {
            self.limits.cooldown = parse_duration(&v)
                .map_err(|e| bad("FDR_SENTINEL_COOLDOWN", &v, EnvProblem::Value(e)))?;
        }
        if let Some(v) = var("FDR_SENTINEL_MAX_DUMPS") {
            let parsed = (|| {
                let (n, window) = v.split_once(" per ").ok_or(EnvProblem::NotNPerDuration)?;
                let n: u32 = n
                    .trim()
                    .parse()
                    .map_err(|_| EnvProblem::CountNotAWholeNumber)?;
                Ok((n, parse_duration(window.trim()).map_err(EnvProblem::Value)?))
            })();
            let (n, window) = parsed.map_err(|e| bad("FDR_SENTINEL_MAX_DUMPS", &v, e))?;
            self.limits.max_dumps = n;
            self.limits.window = window;
        }
        if let Some(v) = var("FDR_SENTINEL_SERVICE_VERSION") {
            self.service_version = Some(v);
        }
        if let Some(v) = var("FDR_SENTINEL_SNAPSHOT_WAIT") {
            self.snapshot_wait = parse_duration(&v)
                .map_err(|e| bad("FDR_SENTINEL_SNAPSHOT_WAIT", &v, EnvProblem::Value(e)))?;
        }
        if let Some(v) = var("FDR_SENTINEL_FILE_MODE") {
            let mode = u32::from_str_radix(v.trim_start_matches("0o"), 8)
                .map_err(|_| EnvProblem::NotAnOctalMode)
                .and_then(|m| {
                    crate::layout::check_file_mode(m)
                        .map(|()| m)
                        .map_err(EnvProblem::FileMode)
                })
                .map_err(|e| bad("FDR_SENTINEL_FILE_MODE", &v, e))?;
            self.file_mode = Some(mode);
        }
        Ok(self)
    }

    /// `FDR_SENTINEL_URL`; for `s3://`, the AWS variables too (object_store reads the
    /// process environment itself; these make [`SentinelBuilder::with_vars`] whole).
    #[cfg(feature = "object-store")]
    fn bucket_from_env(
        self,
        url: &str,
        retention: crate::Retention,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let config = crate::BucketConfig::from_url(url).map_err(|e| Error::Env {
            var: "FDR_SENTINEL_URL",
            value: url.to_owned(),
            reason: EnvProblem::Url(e),
        })?;
        let mut options = Vec::new();
        if url.starts_with("s3://") {
            for name in AWS_VARS {
                if let Some(v) = var(name) {
                    options.push((name.to_ascii_lowercase(), v));
                }
            }
        }
        Ok(self.bucket(crate::BucketConfig {
            options,
            retention,
            ..config
        }))
    }

    #[cfg(not(feature = "object-store"))]
    fn bucket_from_env(
        self,
        url: &str,
        _: crate::Retention,
        _: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        Err(Error::Env {
            var: "FDR_SENTINEL_URL",
            value: url.to_owned(),
            reason: EnvProblem::NoObjectStore,
        })
    }

    /// `FDR_SENTINEL_CA_FILE`, over the object store's configuration.
    fn ca_file_from_env(self, path: &str) -> Result<Self, Error> {
        let bad = |reason: EnvProblem| Error::Env {
            var: "FDR_SENTINEL_CA_FILE",
            value: path.to_owned(),
            reason,
        };
        #[cfg(feature = "object-store")]
        {
            let mut this = self;
            match &mut this.store {
                crate::sentinel::StoreChoice::Bucket(c) => {
                    c.root_certificates = Some(path.into());
                }
                _ => return Err(bad(EnvProblem::CaFileWithoutBucket)),
            }
            Ok(this)
        }
        #[cfg(not(feature = "object-store"))]
        {
            let _ = self;
            Err(bad(EnvProblem::NoObjectStore))
        }
    }
}

/// What is wrong with an `FDR_SENTINEL_*` variable ([`Error::Env`], which names the
/// variable and its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvProblem {
    /// A rule of `FDR_SENTINEL_RULES` does not parse.
    #[error("{0}")]
    Rule(Box<RuleError>),
    /// A duration or a size does not parse.
    #[error("{0}")]
    Value(ValueError),
    /// Not a whole number (`FDR_SENTINEL_RETAIN_COUNT`).
    #[error("expected a whole number")]
    NotAWholeNumber,
    /// `FDR_SENTINEL_MAX_DUMPS` is not `N per DURATION`.
    #[error("expected `N per DURATION`, like `10 per 1h`")]
    NotNPerDuration,
    /// `FDR_SENTINEL_MAX_DUMPS`' count is not a whole number.
    #[error("expected a whole number before `per`")]
    CountNotAWholeNumber,
    /// A variable of an earlier release that is no longer read.
    #[error(
        "no longer read: set FDR_SENTINEL_URL=s3://BUCKET/PREFIX, with AWS_ENDPOINT_URL and \
         AWS_REGION for the server and its region"
    )]
    NoLongerRead,
    /// `FDR_SENTINEL_DIR` and `FDR_SENTINEL_URL` are both set.
    #[error("FDR_SENTINEL_DIR is set too: choose one store")]
    TwoStores,
    /// Retention is set, but no store it applies to (a directory or an object store).
    #[error("{RETENTION_WITHOUT_STORE}")]
    RetentionWithoutStore,
    /// `FDR_SENTINEL_URL` is not a bucket URL this build can use.
    #[cfg(feature = "object-store")]
    #[error("{0}")]
    Url(crate::UrlError),
    /// An object store's variable, in a build without an object-store feature.
    #[error(
        "this build has no object store: enable fdr-sentinel's `aws`, `gcp`, `azure` or \
         `local` feature"
    )]
    NoObjectStore,
    /// `FDR_SENTINEL_CA_FILE` without an object store.
    #[error("applies to an object store: set FDR_SENTINEL_URL too")]
    CaFileWithoutBucket,
    /// `FDR_SENTINEL_FILE_MODE` is not an octal number.
    #[error("expected an octal mode, like 0600 or 0640")]
    NotAnOctalMode,
    /// `FDR_SENTINEL_FILE_MODE` is a mode the stores refuse.
    #[error("{0}")]
    FileMode(FileModeError),
}

/// [`EnvProblem::RetentionWithoutStore`]'s text: the stores this build has.
const RETENTION_WITHOUT_STORE: &str = if cfg!(feature = "object-store") {
    "retention applies to a directory or object store: set FDR_SENTINEL_DIR (or \
     FDR_SENTINEL_URL) too"
} else {
    "retention applies to a directory store: set FDR_SENTINEL_DIR too"
};

/// The AWS variables an `s3://` store takes from [`SentinelBuilder::with_vars`], as
/// object_store's configuration keys (lowercased).
#[cfg(feature = "object-store")]
const AWS_VARS: [&str; 8] = [
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ALLOW_HTTP",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::EnvProblem;
    use crate::sentinel::StoreChoice;
    use crate::{Retention, Sentinel};

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_overrides_the_code() {
        let b = Sentinel::builder()
            .interval(Duration::from_secs(5))
            .with_vars(vars(&[
                (
                    "FDR_SENTINEL_RULES",
                    "a: fdr_tasks_alive growth > 1000 for 6; b: process_threads value > 500",
                ),
                ("FDR_SENTINEL_INTERVAL", "250ms"),
                ("FDR_SENTINEL_DIR", "/tmp/incidents"),
                ("FDR_SENTINEL_RETAIN_BYTES", "64MiB"),
                ("FDR_SENTINEL_MAX_DUMPS", "4 per 30m"),
                ("FDR_SENTINEL_COOLDOWN", "2m"),
                ("FDR_SENTINEL_SNAPSHOT_WAIT", "2m"),
                ("FDR_SENTINEL_FILE_MODE", "0640"),
            ]))
            .unwrap();
        assert_eq!(b.snapshot_wait, Duration::from_secs(120));
        assert_eq!(b.file_mode, Some(0o640));
        assert_eq!(b.interval, Duration::from_millis(250));
        let names: Vec<_> = b.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(b.rules[0].for_samples, 6);
        let StoreChoice::Dir(dir, retention) = &b.store else {
            panic!("{:?}", b.store)
        };
        assert_eq!(dir, std::path::Path::new("/tmp/incidents"));
        assert_eq!(
            *retention,
            Retention {
                max_bytes: 64 << 20,
                ..Retention::default()
            }
        );
        assert_eq!(b.limits.max_dumps, 4);
        assert_eq!(b.limits.window, Duration::from_secs(1800));
        assert_eq!(b.limits.cooldown, Duration::from_secs(120));
    }

    #[test]
    fn a_bad_variable_is_named_with_its_value() {
        let cases: [(&'static [(&'static str, &'static str)], &str); 7] = [
            (
                &[("FDR_SENTINEL_INTERVAL", "often")],
                "FDR_SENTINEL_INTERVAL=\"often\"",
            ),
            (
                &[("FDR_SENTINEL_RULES", "x: m p99 >")],
                "expected a threshold",
            ),
            (
                &[("FDR_SENTINEL_MAX_DUMPS", "4 every 1h")],
                "expected `N per DURATION`",
            ),
            (
                &[("FDR_SENTINEL_RETAIN_COUNT", "9")],
                "set FDR_SENTINEL_DIR",
            ),
            (
                &[("FDR_SENTINEL_FILE_MODE", "0666")],
                "FDR_SENTINEL_FILE_MODE=\"0666\": file mode 0o666: no one but the owner may write",
            ),
            (
                &[("FDR_SENTINEL_FILE_MODE", "rw-------")],
                "expected an octal mode",
            ),
            (
                &[(
                    "FDR_SENTINEL_RULES",
                    "ok: m value > 1; a_rule_name_far_too_long_to_name_its_incidents_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: m value > 1",
                )],
                "is 180 bytes long; a rule name is at most 179",
            ),
        ];
        for (v, want) in cases {
            let e = Sentinel::builder().with_vars(vars(v)).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        // The reason is typed, for a caller to match.
        let reason = |v: &'static [(&'static str, &'static str)]| match Sentinel::builder()
            .with_vars(vars(v))
            .unwrap_err()
        {
            crate::Error::Env { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(&[("FDR_SENTINEL_FILE_MODE", "0666")]),
            EnvProblem::FileMode(crate::FileModeError::OthersMayWrite { mode: 0o666 })
        );
        assert_eq!(
            reason(&[("FDR_SENTINEL_RETAIN_COUNT", "many")]),
            EnvProblem::NotAWholeNumber
        );
        assert_eq!(
            reason(&[("FDR_SENTINEL_COOLDOWN", "2")]),
            EnvProblem::Value(crate::ValueError::NotADuration { text: "2".into() })
        );
        assert!(matches!(
            reason(&[("FDR_SENTINEL_RULES", "x: m p99 >")]),
            EnvProblem::Rule(_)
        ));
    }

    #[cfg(feature = "aws")]
    #[test]
    fn the_object_store_comes_from_the_environment() {
        let b = Sentinel::builder()
            .dir("/tmp/incidents", Retention::default())
            .with_vars(vars(&[
                ("FDR_SENTINEL_URL", "s3://bucket/svc/incidents"),
                ("AWS_ENDPOINT_URL", "https://127.0.0.1:9000"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "SECRET"),
                ("FDR_SENTINEL_RETAIN_COUNT", "5"),
                ("FDR_SENTINEL_CA_FILE", "/etc/ssl/ca.pem"),
            ]))
            .unwrap();
        let StoreChoice::Bucket(c) = b.store else {
            panic!("the object store replaces the code's: {:?}", b.store)
        };
        assert_eq!(c.url, "s3://bucket/svc/incidents");
        let option = |k: &str| {
            c.options
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(option("aws_endpoint_url"), Some("https://127.0.0.1:9000"));
        assert_eq!(option("aws_region"), Some("eu-west-1"));
        assert_eq!(option("aws_access_key_id"), Some("AKID"));
        assert_eq!(option("aws_secret_access_key"), Some("SECRET"));
        assert_eq!(
            c.root_certificates.as_deref(),
            Some(std::path::Path::new("/etc/ssl/ca.pem"))
        );
        assert_eq!(
            c.retention,
            Retention {
                max_count: 5,
                ..Retention::default()
            }
        );

        // Retention alone changes the code's object store; AWS_* are read only with
        // FDR_SENTINEL_URL.
        let code = crate::BucketConfig::from_url("s3://b").unwrap();
        let b = Sentinel::builder()
            .bucket(code)
            .with_vars(vars(&[
                ("FDR_SENTINEL_RETAIN_BYTES", "1MiB"),
                ("AWS_ACCESS_KEY_ID", "other"),
            ]))
            .unwrap();
        let StoreChoice::Bucket(c) = b.store else {
            panic!("{:?}", b.store)
        };
        assert_eq!(c.retention.max_bytes, 1 << 20);
        assert!(c.options.is_empty(), "{:?}", c.options);
    }

    #[cfg(feature = "aws")]
    #[test]
    fn a_bad_object_store_variable_is_named_and_secrets_are_not_echoed() {
        const URL: (&str, &str) = ("FDR_SENTINEL_URL", "s3://b/p");
        const SECRET: (&str, &str) = ("AWS_SECRET_ACCESS_KEY", "hunter2");
        let cases: [(&'static [(&'static str, &'static str)], &str); 5] = [
            (
                &[("FDR_SENTINEL_URL", "ftp://b"), SECRET],
                "FDR_SENTINEL_URL=\"ftp://b\": unknown scheme `ftp://`",
            ),
            (&[("FDR_SENTINEL_URL", "s3://"), SECRET], "no bucket"),
            (
                &[URL, SECRET, ("FDR_SENTINEL_DIR", "/tmp/x")],
                "FDR_SENTINEL_DIR is set too",
            ),
            (
                &[("FDR_SENTINEL_CA_FILE", "/etc/ca.pem")],
                "set FDR_SENTINEL_URL too",
            ),
            (
                &[("FDR_SENTINEL_S3_URL", "http://127.0.0.1:9000/b"), SECRET],
                "FDR_SENTINEL_S3_URL=\"http://127.0.0.1:9000/b\": no longer read: set \
                 FDR_SENTINEL_URL=s3://BUCKET/PREFIX",
            ),
        ];
        for (v, want) in cases {
            let e = Sentinel::builder().with_vars(vars(v)).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        // Retention alone, with no store to apply to.
        let e = Sentinel::builder()
            .with_vars(vars(&[("FDR_SENTINEL_RETAIN_BYTES", "1GiB")]))
            .unwrap_err();
        assert!(
            e.to_string().contains(
                "FDR_SENTINEL_RETAIN_BYTES=\"\": retention applies to a directory or object store"
            ),
            "{e}"
        );
    }

    #[cfg(not(feature = "object-store"))]
    #[test]
    fn without_an_object_store_feature_its_variables_are_errors() {
        const CASES: [&[(&str, &str)]; 2] = [
            &[("FDR_SENTINEL_URL", "s3://b")],
            &[("FDR_SENTINEL_CA_FILE", "/etc/ca.pem")],
        ];
        for v in CASES {
            let e = Sentinel::builder().with_vars(vars(v)).unwrap_err();
            assert!(
                e.to_string().contains(
                    "this build has no object store: enable fdr-sentinel's `aws`, `gcp`, \
                     `azure` or `local` feature"
                ),
                "{e}"
            );
        }
    }
}
