//! Every dump's header names the process: host, service and its version, pid, process
//! start, fdr's version and the program's build id; the host, the service and its version
//! as the configuration says, the rest as the system says. (Own test binary: it configures
//! the global recorder.)

use fdr_format::{Decoder, ProcessInfo};
use fdr_recorder::Config;

fn header_of_a_dump() -> ProcessInfo {
    let mut buf = Vec::new();
    fdr_recorder::flight().write_to(&mut buf).unwrap();
    Decoder::new(&buf).unwrap().process_info().clone()
}

#[test]
fn the_dump_header_carries_the_configured_and_the_systems_identity() {
    // Defaults first: the host is the system's, the service is named.
    let defaults = Config::default();
    assert!(!defaults.host.is_empty(), "no host name found");
    assert!(!defaults.service.is_empty(), "no service name found");
    fdr_recorder::start(Config::default()).unwrap();
    let info = header_of_a_dump();
    assert_eq!(info.host, defaults.host);
    assert_eq!(info.service, defaults.service);

    fdr_recorder::start(Config {
        service: "checkout-api".into(),
        service_version: "42.1".into(),
        host: "web-7.example".into(),
        ..Config::default()
    })
    .unwrap();
    let info = header_of_a_dump();
    assert_eq!(
        info,
        fdr_recorder::process_info(),
        "what the recorder says it writes"
    );
    assert_eq!(info.service, "checkout-api");
    assert_eq!(info.service_version, "42.1");
    assert_eq!(info.host, "web-7.example");
    assert_eq!(info.pid, std::process::id());
    assert_eq!(info.fdr_version, env!("CARGO_PKG_VERSION"));
    assert!(
        info.process_start_unix_ns > 0,
        "the process start is known on this platform"
    );
    // The process started before its recorder (`/proc`'s boot time is in whole seconds).
    assert!(
        info.process_start_unix_ns <= info.start_unix_ns + 1_000_000_000,
        "process start {} after the recording start {}",
        info.process_start_unix_ns,
        info.start_unix_ns
    );
    if cfg!(target_os = "linux") {
        assert!(
            info.build_id.len() >= 16 && info.build_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "rustc links a GNU build id: {:?}",
            info.build_id
        );
    }
}
