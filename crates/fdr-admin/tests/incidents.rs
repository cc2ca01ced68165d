//! The sentinel's incidents: listed as JSON, downloaded byte for byte, bad and missing ids
//! refused. (Own test binary; the recorder is not needed: incidents are put directly.)
#![cfg(feature = "sentinel")]

mod common;

use std::io::Write;
use std::time::Duration;

use common::get;
use fdr_admin::Admin;
use fdr_sentinel::{IncidentMeta, Retention, Rule, Sentinel, Stat};

fn meta(id: &str, t: u64) -> IncidentMeta {
    IncidentMeta {
        id: id.to_owned(),
        rule: "slow_sched".into(),
        condition: "slow_sched: fdr_sched_latency_ns p99 > 20000000 for 3".into(),
        metric: "fdr_sched_latency_ns".into(),
        value: 31e6,
        threshold: 20e6,
        values: vec![("slow_sched".into(), 31e6)],
        time_unix_ms: t,
        host: "test-host".into(),
        pid: 42,
        service_version: Some("1.2.3".into()),
        bytes: 0,
        cost: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_listed_downloaded_and_bad_ids_refused() {
    let dir = std::env::temp_dir().join(format!("fdr-admin-incidents-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sentinel = Sentinel::builder()
        .interval(Duration::from_secs(3600))
        .rule(Rule::above("never", "fdr_tasks_alive", Stat::Value, 1e12))
        .dir(&dir, Retention::default())
        .start()
        .unwrap();
    // Bigger than one frame of the stream, and not a repeating pattern.
    let dump: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let store = sentinel.store();
    store
        .put(
            &meta("20260101T000000.000Z-old", 1_000),
            &mut |w: &mut dyn Write| w.write_all(b"old").map(|()| 3),
        )
        .unwrap();
    let id = "20260102T030405.678Z-slow_sched";
    store
        .put(&meta(id, 2_000), &mut |w: &mut dyn Write| {
            w.write_all(&dump).map(|()| dump.len() as u64)
        })
        .unwrap();

    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .sentinel(&sentinel)
        .start()
        .unwrap();
    let addr = admin.local_addr();
    let index = get(addr, "/debug/fdr/", &[]).await.text();
    assert!(index.contains("/debug/fdr/incidents"), "{index}");

    let r = get(addr, "/debug/fdr/incidents", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let list = v["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert_eq!(list[0]["id"], id, "newest first");
    assert_eq!(list[0]["bytes"], dump.len() as u64);
    assert_eq!(list[0]["rule"], "slow_sched");
    assert_eq!(list[0]["service_version"], "1.2.3");
    assert_eq!(list[0]["download"], format!("/debug/fdr/incidents/{id}"));
    assert_eq!(list[1]["id"], "20260101T000000.000Z-old");
    assert_eq!(v["unreadable"].as_array().unwrap().len(), 0);

    let r = get(addr, &format!("/debug/fdr/incidents/{id}"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"{id}.fdr\"").as_str())
    );
    assert!(
        r.body == dump,
        "the download is not the dump ({} bytes)",
        r.body.len()
    );

    for bad in [".hidden", "a%2F..%2Fetc", "x:y"] {
        let r = get(addr, &format!("/debug/fdr/incidents/{bad}"), &[]).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("not an incident id"), "{}", r.text());
        assert_eq!(r.text().lines().count(), 1);
    }
    let r = get(addr, "/debug/fdr/incidents/20990101T000000.000Z-nope", &[]).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("no incident"), "{}", r.text());

    drop(admin);
    sentinel.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
