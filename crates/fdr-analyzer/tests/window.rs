//! A flight-recorder window starts mid-flight: tasks whose creation it does not hold.

use fdr_format::{
    BatchEncoder, ClockSync, EventKind, ProcessInfo, StrId, TableEncoder, TaskId, ThreadId,
    TraceWriter,
};

#[test]
fn tasks_created_before_the_window_are_named_so_not_after_string_zero() {
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    let mut t = TableEncoder::new();
    // The recorder defines string 0 as its intern-overflow name.
    t.string(StrId(0), "<overflow>")
        .string(StrId(1), "http GET /user");
    t.thread(ThreadId(1), 11, "worker");
    t.clock(&ClockSync {
        ticks: 0,
        mono_ns: 0,
        wall_unix_ns: 0,
        ticks_per_sec: 1e9,
    });
    w.write_table(&t, true).unwrap();
    let mut buf = [0u8; 512];
    let mut b = BatchEncoder::new(&mut buf, 1_000);
    let (old, new) = (TaskId(5), TaskId(6));
    // Task 5 was created before the window: only its last poll is in it.
    b.push(1_000, &EventKind::PollStart { task: old }).unwrap();
    b.push(
        2_000,
        &EventKind::PollEnd {
            task: old,
            ready: true,
        },
    )
    .unwrap();
    b.push(2_100, &EventKind::TaskDrop { task: old }).unwrap();
    let create = EventKind::TaskCreate {
        task: new,
        parent: TaskId::NONE,
        name: StrId(1),
        site: Default::default(),
    };
    b.push(3_000, &create).unwrap();
    b.push(3_100, &EventKind::PollStart { task: new }).unwrap();
    b.push(
        4_100,
        &EventKind::PollEnd {
            task: new,
            ready: true,
        },
    )
    .unwrap();
    b.push(4_200, &EventKind::TaskDrop { task: new }).unwrap();
    w.write_events(ThreadId(1), 0, b.base_ts(), b.payload())
        .unwrap();
    let bytes = w.finish().unwrap();

    let (p, out) = fdr_analyzer::profile_slice(&bytes, Default::default()).unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    let text = fdr_analyzer::views::tasks_text(&p);
    assert!(text.contains("(created before the window)"), "{text}");
    assert!(text.contains("http GET /user"), "{text}");
    assert!(!text.contains("<overflow>"), "{text}");
}
