//! A panic dumps the flight recorder: run this test binary again as a child that panics,
//! then decode the dump it left. (Without `record` there is no recorder to dump.)
#![cfg(feature = "record")]

use std::process::Command;

const CHILD: &str = "FDR_PANIC_DUMP_CHILD_DIR";

#[test]
fn a_panic_leaves_a_decodable_dump_with_the_last_events() {
    if let Ok(dir) = std::env::var(CHILD) {
        fdr::start(fdr::Config::default()).unwrap();
        fdr::dump_on_panic(&dir);
        let _task = fdr::task("doomed request");
        let _r = fdr::region("last words");
        panic!("injected failure");
    }
    let dir = std::env::temp_dir().join(format!("fdr-panic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panic_leaves_a_decodable_dump_with_the_last_events",
            "--nocapture",
        ])
        .env(CHILD, &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child must fail: {stderr}");
    assert!(
        stderr.contains("injected failure"),
        "the previous hook still reports: {stderr}"
    );
    assert!(stderr.contains("flight recorder dumped to"), "{stderr}");
    let dumps: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        dumps.len(),
        1,
        "exactly one dump and no temporary file: {dumps:?}"
    );
    let bytes = std::fs::read(&dumps[0]).unwrap();
    let mut d = fdr_format::Decoder::new(&bytes).unwrap();
    let mut tables = fdr_format::Tables::new();
    let mut names = Vec::new();
    while let Some(b) = d.next_batch() {
        match b.unwrap() {
            fdr_format::Batch::Table(t) => tables.apply(&t).unwrap(),
            fdr_format::Batch::Events(b) => {
                for e in b.events() {
                    if let fdr_format::EventKind::RegionBegin { name } = e.unwrap().kind {
                        names.push(tables.name(name).into_owned());
                    }
                }
            }
        }
    }
    assert_eq!(names, ["last words"]);
    let _ = std::fs::remove_dir_all(&dir);
}
