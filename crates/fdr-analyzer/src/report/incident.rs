//! An incident's sidecar (`ID.json` beside `ID.fdr`, as the sentinel's stores and the
//! panic dump write it): the rule that fired, its value and threshold, when, where.

use serde_json::Value;

/// The most of a sidecar read (the sentinel's are a few hundred bytes).
pub const MAX_SIDECAR_BYTES: usize = 1 << 20;

/// What an incident's sidecar says about its trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The incident's id (`20261202T040512.123Z-slow_sched`).
    pub id: String,
    /// The rule that fired (`panic` for a panic dump).
    pub rule: String,
    /// The rule as text, or the panic's location and message.
    pub condition: String,
    /// The metric the rule reads.
    pub metric: String,
    /// The statistic's value that breached.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Every rule's statistic at the trigger.
    pub values: Vec<(String, f64)>,
    /// When the rule fired, milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// The host's name.
    pub host: String,
    /// The process.
    pub pid: u64,
    /// The service's version, when known.
    pub service_version: Option<String>,
}

/// Why a sidecar could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SidecarError {
    /// Longer than [`MAX_SIDECAR_BYTES`].
    #[error("{bytes} bytes, over the {MAX_SIDECAR_BYTES} a sidecar may have")]
    TooLarge {
        /// Its length.
        bytes: usize,
    },
    /// Not a JSON document.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A field missing or of the wrong type (the first such).
    #[error("field `{field}`: expected {expected}")]
    Field {
        /// The field's name.
        field: String,
        /// What it should hold.
        expected: &'static str,
    },
}

impl Incident {
    /// Reads a sidecar; the error names the first field missing or of the wrong type.
    pub fn from_json(bytes: &[u8]) -> Result<Incident, SidecarError> {
        if bytes.len() > MAX_SIDECAR_BYTES {
            return Err(SidecarError::TooLarge { bytes: bytes.len() });
        }
        let v: Value = serde_json::from_slice(bytes).map_err(SidecarError::NotJson)?;
        let field = |field: &'static str, expected: &'static str| SidecarError::Field {
            field: field.to_owned(),
            expected,
        };
        let s = |k: &'static str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| field(k, "a string"))
        };
        let f = |k: &'static str| {
            v.get(k)
                .and_then(Value::as_f64)
                .ok_or_else(|| field(k, "a number"))
        };
        let u = |k: &'static str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| field(k, "a whole number"))
        };
        let values = match v.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .take(1024)
                .map(|e| {
                    Some((
                        e.get("rule")?.as_str()?.to_owned(),
                        e.get("value")?.as_f64()?,
                    ))
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| field("values", "{rule, value} entries"))?,
            Some(_) => return Err(field("values", "an array")),
        };
        Ok(Incident {
            id: s("id")?,
            rule: s("rule")?,
            condition: s("condition")?,
            metric: s("metric").unwrap_or_default(),
            value: f("value")?,
            threshold: f("threshold")?,
            values,
            time_unix_ms: u("time_unix_ms")?,
            host: s("host").unwrap_or_default(),
            pid: u("pid").unwrap_or(0),
            service_version: v
                .get("service_version")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// The sidecar beside a dump: `ID.json` for `ID.fdr` (any other name: the same name
    /// with `.json`).
    pub fn sidecar_path(dump: &std::path::Path) -> std::path::PathBuf {
        dump.with_extension("json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_sidecar_reads_and_a_bad_one_says_which_field() {
        let good = br#"{"id":"20261202T040512.123Z-slow","rule":"slow","condition":"slow: fdr_lock_wait_seconds p99 > 0.002 for 3","metric":"fdr_lock_wait_seconds","value":0.0123,"threshold":0.002,"values":[{"rule":"slow","value":0.0123}],"time_unix_ms":1796184312123,"host":"h","pid":42,"service_version":"1.2","bytes":10}"#;
        let i = Incident::from_json(good).unwrap();
        assert_eq!(i.rule, "slow");
        assert_eq!(i.values, [("slow".to_string(), 0.0123)]);
        assert_eq!(i.time_unix_ms, 1796184312123);
        let bad = br#"{"id":"x","rule":"slow","condition":"c","value":"high","threshold":1,"time_unix_ms":1}"#;
        let e = Incident::from_json(bad).unwrap_err();
        assert!(
            matches!(&e, SidecarError::Field { field, .. } if field == "value"),
            "{e}"
        );
        assert_eq!(e.to_string(), "field `value`: expected a number");
        let e = Incident::from_json(b"{").unwrap_err();
        assert!(matches!(e, SidecarError::NotJson(_)), "{e}");
        assert!(e.to_string().starts_with("not JSON: "), "{e}");
    }
}
