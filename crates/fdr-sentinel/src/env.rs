//! Configuration from the environment, so operations can tune the sentinel without a
//! rebuild. Each variable set overrides what the code configured:
//!
//! | variable | example | meaning |
//! |---|---|---|
//! | `FDR_SENTINEL_RULES` | `slow: fdr_sched_latency_ns p99 > 20ms for 3; leak: fdr_tasks_alive growth > 1000` | the rules (replacing the code's), `;`-separated ([`Rule::parse`]) |
//! | `FDR_SENTINEL_INTERVAL` | `5s` | sampling interval |
//! | `FDR_SENTINEL_DIR` | `/var/lib/app/incidents` | incident directory |
//! | `FDR_SENTINEL_RETAIN_COUNT` | `20` | incidents kept |
//! | `FDR_SENTINEL_RETAIN_BYTES` | `1GiB` | bytes of dumps kept |
//! | `FDR_SENTINEL_COOLDOWN` | `1m` | at least this long between any two dumps |
//! | `FDR_SENTINEL_MAX_DUMPS` | `10 per 1h` | at most N dumps per window, across rules |
//! | `FDR_SENTINEL_SERVICE_VERSION` | `1.4.2` | written into each incident |

use crate::rule::{Rule, parse_bytes, parse_duration};
use crate::sentinel::{Error, SentinelBuilder};

impl SentinelBuilder {
    /// Applies the `FDR_SENTINEL_*` variables that are set (see [`crate::env`]); a value
    /// that cannot be used is an error naming the variable.
    pub fn from_env(self) -> Result<Self, Error> {
        self.with_vars(|k| std::env::var(k).ok())
    }

    /// [`SentinelBuilder::from_env`] over any source of variables.
    pub fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let bad = |var: &'static str, value: &str, reason: String| Error::Env {
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
            self.rules = rules.map_err(|e| bad("FDR_SENTINEL_RULES", &v, e.to_string()))?;
        }
        if let Some(v) = var("FDR_SENTINEL_INTERVAL") {
            self.interval = parse_duration(&v).map_err(|e| bad("FDR_SENTINEL_INTERVAL", &v, e))?;
        }
        let mut retention = self.dir.as_ref().map(|(_, r)| *r).unwrap_or_default();
        let mut retention_set = false;
        if let Some(v) = var("FDR_SENTINEL_RETAIN_COUNT") {
            retention.max_count = v.parse().map_err(|_| {
                bad(
                    "FDR_SENTINEL_RETAIN_COUNT",
                    &v,
                    "expected a whole number".into(),
                )
            })?;
            retention_set = true;
        }
        if let Some(v) = var("FDR_SENTINEL_RETAIN_BYTES") {
            retention.max_bytes =
                parse_bytes(&v).map_err(|e| bad("FDR_SENTINEL_RETAIN_BYTES", &v, e))?;
            retention_set = true;
        }
        if let Some(v) = var("FDR_SENTINEL_DIR") {
            self = self.dir(v, retention);
        } else if retention_set {
            match &mut self.dir {
                Some((_, r)) => *r = retention,
                None => {
                    return Err(bad(
                        "FDR_SENTINEL_RETAIN_COUNT",
                        "",
                        "retention applies to a directory store: set FDR_SENTINEL_DIR too".into(),
                    ));
                }
            }
        }
        if let Some(v) = var("FDR_SENTINEL_COOLDOWN") {
            self.limits.cooldown =
                parse_duration(&v).map_err(|e| bad("FDR_SENTINEL_COOLDOWN", &v, e))?;
        }
        if let Some(v) = var("FDR_SENTINEL_MAX_DUMPS") {
            let parsed = (|| {
                let (n, window) = v
                    .split_once(" per ")
                    .ok_or("expected `N per DURATION`, like `10 per 1h`")?;
                let n: u32 = n
                    .trim()
                    .parse()
                    .map_err(|_| "expected a whole number before `per`")?;
                Ok::<_, String>((n, parse_duration(window.trim())?))
            })();
            let (n, window) = parsed.map_err(|e| bad("FDR_SENTINEL_MAX_DUMPS", &v, e))?;
            self.limits.max_dumps = n;
            self.limits.window = window;
        }
        if let Some(v) = var("FDR_SENTINEL_SERVICE_VERSION") {
            self.service_version = Some(v);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
            ]))
            .unwrap();
        assert_eq!(b.interval, Duration::from_millis(250));
        let names: Vec<_> = b.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(b.rules[0].for_samples, 6);
        assert_eq!(
            b.dir,
            Some((
                "/tmp/incidents".into(),
                Retention {
                    max_bytes: 64 << 20,
                    ..Retention::default()
                }
            ))
        );
        assert_eq!(b.limits.max_dumps, 4);
        assert_eq!(b.limits.window, Duration::from_secs(1800));
        assert_eq!(b.limits.cooldown, Duration::from_secs(120));
    }

    #[test]
    fn a_bad_variable_is_named_with_its_value() {
        let cases: [(&'static [(&'static str, &'static str)], &str); 4] = [
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
                "set FDR_SENTINEL_DIR too",
            ),
        ];
        for (v, want) in cases {
            let e = Sentinel::builder().with_vars(vars(v)).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
