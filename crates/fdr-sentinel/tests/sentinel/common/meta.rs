//! The incident the store tests put, shared by the sentinel's integration tests and the
//! directory store's unit tests (`src/store.rs` includes this file): every field the
//! sentinel fills is set, so a round trip through a store checks each. The includer has
//! `IncidentMeta` in scope.

use super::IncidentMeta;

/// Incident `id` of rule `r`, fired at `time_unix_ms`. With `service`, its process names
/// itself as the recorder's identity does (the service, its start, fdr's version, a build
/// id); without, as in a sidecar written before sidecars named the process.
pub(crate) fn meta(id: &str, time_unix_ms: u64, service: Option<&str>) -> IncidentMeta {
    let named = service.is_some();
    IncidentMeta {
        id: id.to_owned(),
        rule: "r".into(),
        condition: "r: m value > 1 for 1".into(),
        metric: "m".into(),
        value: 2.0,
        threshold: 1.0,
        values: vec![("r".into(), 2.0)],
        time_unix_ms,
        host: "h".into(),
        pid: 7,
        service_version: Some("1.2.3".into()),
        service: service.map(str::to_owned),
        process_start_unix_ms: named.then_some(1_700_000_000_000),
        fdr_version: named.then(|| "0.1.0".to_owned()),
        build_id: named.then(|| "0a1b2c".to_owned()),
        bytes: 0,
        cost: None,
    }
}
