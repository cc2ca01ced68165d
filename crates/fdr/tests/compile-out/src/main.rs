//! Uses every recording call of the facade, as an instrumented library would.

fn handler(user: u32) -> u32 {
    let _task = fdr::task("request");
    let sum = fdr::with_region("auth", || user * 2);
    let _db = fdr::region("db");
    fdr::log!("db", "static message");
    fdr::log!("db", "user {user} sum {sum}");
    fdr::log("db", "plain");
    sum
}

fn main() {
    let recorder = fdr::start(fdr::Config::default()).expect("start never fails");
    let _ = recorder;
    let mut total = 0;
    for i in 0..1000 {
        total += handler(i);
    }
    let mut dump = Vec::new();
    let written = fdr::flight().write_to(&mut dump);
    let recording = cfg!(feature = "record");
    assert_eq!(fdr::enabled(), recording);
    assert_eq!(written.is_ok(), recording, "{written:?}");
    assert_eq!(dump.is_empty(), !recording);
    println!(
        "compile-out check: record={recording}, total={total}, dump={} bytes, lost={}",
        dump.len(),
        fdr::stats().lost_events()
    );
}
