//! What fdr cost the process when an incident was written: the recorder's live cost meter
//! (`fdr_recorder::cost`) as of its last interval, kept in the incident's sidecar under
//! `cost`.

/// fdr's cost at an incident ([`crate::IncidentMeta::cost`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentCost {
    /// fdr's share of the process's CPU over the meter's last interval (its threads and the
    /// recording estimate).
    pub share: f64,
    /// The budget above which fdr sheds detail.
    pub budget: f64,
    /// Detail shed then: 0 none, 1 wakes, 2 wakes and polls.
    pub shed_level: u8,
    /// Events recorded per second over the meter's last interval.
    pub events_per_second: f64,
    /// CPU time of fdr's own threads by thread (`collector`, `sampler`, ...), since they
    /// started, in seconds.
    pub thread_cpu_seconds: Vec<(String, f64)>,
    /// The recording threads' estimated CPU time spent recording, in seconds.
    pub recording_cpu_seconds: f64,
    /// The process's CPU time, every thread, in seconds.
    pub process_cpu_seconds: f64,
}

impl IncidentCost {
    /// The meter's last reading; `None` before its first interval (the recorder's metrics
    /// sampler, which runs it, is off or has not run yet).
    pub fn now() -> Option<IncidentCost> {
        let c = fdr_recorder::cost::cost();
        (c.intervals > 0).then(|| IncidentCost {
            share: c.share,
            budget: c.budget,
            shed_level: c.detail.level(),
            events_per_second: c.events_per_second,
            thread_cpu_seconds: fdr_recorder::cost::Role::ALL
                .iter()
                .zip(c.thread_cpu_ns)
                .map(|(r, ns)| (r.name().to_owned(), ns as f64 / 1e9))
                .collect(),
            recording_cpu_seconds: c.recording_cpu_ns as f64 / 1e9,
            process_cpu_seconds: c.process_cpu_ns as f64 / 1e9,
        })
    }

    /// The sidecar's `cost` object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "share": self.share,
            "budget": self.budget,
            "shed_level": self.shed_level,
            "events_per_second": self.events_per_second,
            "thread_cpu_seconds": self
                .thread_cpu_seconds
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>(),
            "recording_cpu_seconds": self.recording_cpu_seconds,
            "process_cpu_seconds": self.process_cpu_seconds,
        })
    }

    /// Reads a sidecar's `cost` object; the error names the first field missing or of the
    /// wrong type.
    pub fn from_json(v: &serde_json::Value) -> Result<IncidentCost, crate::SidecarError> {
        let field =
            |field: &'static str, expected: &'static str| crate::SidecarError { field, expected };
        // `key` in the sidecar's `cost` object, named `cost.key` in errors.
        let f = |key: &str, name: &'static str| {
            v.get(key)
                .and_then(|x| x.as_f64())
                .ok_or_else(|| field(name, "a number"))
        };
        let shed_level = v
            .get("shed_level")
            .and_then(|x| x.as_u64())
            .and_then(|x| u8::try_from(x).ok())
            .ok_or_else(|| field("cost.shed_level", "a small whole number"))?;
        let thread_cpu_seconds = v
            .get("thread_cpu_seconds")
            .and_then(|x| x.as_object())
            .ok_or_else(|| field("cost.thread_cpu_seconds", "an object"))?
            .iter()
            .map(|(k, x)| Some((k.clone(), x.as_f64()?)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| field("cost.thread_cpu_seconds", "numbers"))?;
        Ok(IncidentCost {
            share: f("share", "cost.share")?,
            budget: f("budget", "cost.budget")?,
            shed_level,
            events_per_second: f("events_per_second", "cost.events_per_second")?,
            thread_cpu_seconds,
            recording_cpu_seconds: f("recording_cpu_seconds", "cost.recording_cpu_seconds")?,
            process_cpu_seconds: f("process_cpu_seconds", "cost.process_cpu_seconds")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::IncidentCost;

    #[test]
    fn the_cost_object_round_trips_and_a_bad_field_is_named() {
        let c = IncidentCost {
            share: 0.004,
            budget: 0.01,
            shed_level: 1,
            events_per_second: 12_345.0,
            thread_cpu_seconds: vec![("collector".into(), 0.25), ("sampler".into(), 0.5)],
            recording_cpu_seconds: 0.125,
            process_cpu_seconds: 100.0,
        };
        let back = IncidentCost::from_json(&c.to_json()).unwrap();
        let mut sorted = c.clone();
        sorted.thread_cpu_seconds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(back, sorted);
        let mut bad = c.to_json();
        bad["budget"] = serde_json::json!("1%");
        let e = IncidentCost::from_json(&bad).unwrap_err();
        assert_eq!((e.field, e.expected), ("cost.budget", "a number"));
        assert_eq!(e.to_string(), "field `cost.budget`: expected a number");
    }
}
