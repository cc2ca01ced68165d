//! The facade's `admin` and `sentinel` features wire the endpoint to the recorder and the
//! sentinel. (Own test binary: it starts the global recorder.)
#![cfg(all(feature = "admin", feature = "sentinel"))]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A plain HTTP/1.0 GET over loopback; returns the status line and the body.
fn get(addr: std::net::SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, raw[split + 4..].to_vec())
}

#[test]
fn the_admin_endpoint_serves_the_facades_recorder_and_sentinel() {
    fdr::start(fdr::Config::default()).unwrap();
    {
        let _task = fdr::task("request");
        fdr::with_region("db", || ());
    }
    let dir = std::env::temp_dir().join(format!("fdr-facade-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sentinel = fdr::sentinel::Sentinel::builder()
        .rule(fdr::sentinel::Rule::above(
            "never",
            "fdr_tasks_alive",
            fdr::sentinel::Stat::Value,
            1e12,
        ))
        .dir(&dir, fdr::sentinel::Retention::default())
        .start()
        .unwrap();
    let admin = fdr::admin::Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .sentinel(&sentinel)
        .start()
        .unwrap();
    let (status, dump) = get(admin.local_addr(), "/debug/fdr/flight");
    assert!(status.contains(" 200 "), "{status}");
    assert!(dump.starts_with(b"\x89FDR"), "not a trace");
    let (status, listing) = get(admin.local_addr(), "/debug/fdr/incidents");
    assert!(status.contains(" 200 "), "{status}");
    assert!(String::from_utf8_lossy(&listing).contains("\"incidents\": []"));
    admin.shutdown();
    sentinel.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
