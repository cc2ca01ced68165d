//! `/debug/fdr/tasks`: the live traced tasks, oldest first, in text and JSON, with their
//! state and last waker, behind the same gate as the other routes. (Own test binary: it
//! starts the global recorder.)

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::get;
use fdr_admin::Admin;
use fdr_recorder::task::FdrFutureExt;

/// Pending until `open` is set; hands its waker out so another thread can wake it.
struct Gate {
    open: Arc<Mutex<(bool, Option<Waker>)>>,
}

impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.open.lock().unwrap();
        if g.0 {
            return Poll::Ready(());
        }
        g.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One line of the text listing, for the task named `name`.
fn line_of<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(&format!(" {name}  (")))
        .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tasks_are_listed_oldest_first_with_state_and_last_waker() {
    common::start_recorder();
    // The oldest: spawned first, polled once, then woken from a plain thread and never
    // polled again (its executor is this test, which does not poll it).
    let woken_gate = Arc::new(Mutex::new((false, None)));
    let mut woken = Box::pin(
        Gate {
            open: woken_gate.clone(),
        }
        .traced("live-woken"),
    );
    std::thread::sleep(Duration::from_millis(5));
    // Then one polled once and left awaiting a wake.
    let waiting_gate = Arc::new(Mutex::new((false, None)));
    let mut waiting = Box::pin(
        Gate {
            open: waiting_gate.clone(),
        }
        .traced("live-awaiting"),
    );
    std::thread::sleep(Duration::from_millis(5));
    // Then one never polled.
    let never = Box::pin(std::future::pending::<()>().traced("live-not-polled"));
    // And one that came and went: not listed.
    drop(Box::pin(std::future::ready(()).traced("live-dropped")));

    let noop = Waker::noop();
    assert!(
        woken
            .as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_pending()
    );
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_pending()
    );
    let w = woken_gate.lock().unwrap().1.take().unwrap();
    std::thread::spawn(move || w.wake()).join().unwrap();

    let admin = Admin::builder().bind(([127, 0, 0, 1], 0)).start().unwrap();
    let addr = admin.local_addr();

    let r = get(addr, "/debug/fdr/tasks", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let text = r.text();
    let first = text.lines().next().unwrap();
    assert!(first.contains("3 live traced tasks, 3 listed"), "{text}");
    assert!(
        first.contains("at most 65536"),
        "the bound is said: {first}"
    );
    assert!(!text.contains("live-dropped"), "{text}");
    let at = |name: &str| text.find(name).unwrap();
    assert!(
        at("live-woken") < at("live-awaiting") && at("live-awaiting") < at("live-not-polled"),
        "oldest first:\n{text}"
    );
    let l = line_of(&text, "live-woken");
    assert!(l.contains(" woken ") && l.contains(" no_task "), "{l}");
    assert!(l.contains("tests/tasks.rs:"), "its spawn site: {l}");
    let l = line_of(&text, "live-awaiting");
    assert!(l.contains(" awaiting ") && l.contains(" created "), "{l}");
    let l = line_of(&text, "live-not-polled");
    assert!(l.contains(" not_polled "), "{l}");

    let r = get(addr, "/debug/fdr/tasks?format=json&limit=2", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["alive"], 3);
    assert_eq!(v["listed"], 2);
    assert_eq!(v["bound"], 65536);
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["name"], "live-woken");
    assert_eq!(tasks[0]["state"], "woken");
    assert_eq!(tasks[0]["last_waker"], "no_task");
    assert!(tasks[0]["age_ns"].as_u64().unwrap() >= 10_000_000, "{v}");
    assert!(
        tasks[0]["since_unix_ns"].as_i64().unwrap() > tasks[0]["created_unix_ns"].as_i64().unwrap()
    );
    assert_eq!(tasks[1]["name"], "live-awaiting");
    assert!(
        tasks[1]["spawn_site"]
            .as_str()
            .unwrap()
            .contains("tests/tasks.rs:")
    );

    // The parameters are checked like the other routes'.
    for bad in ["limit=0", "limit=65537", "format=xml", "seconds=1"] {
        let r = get(addr, &format!("/debug/fdr/tasks?{bad}"), &[]).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    // The index lists it.
    assert!(
        get(addr, "/debug/fdr/", &[])
            .await
            .text()
            .contains("/debug/fdr/tasks")
    );
    drop((woken, waiting, never));
    let r = get(addr, "/debug/fdr/tasks?format=json", &[]).await;
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["alive"], 0, "dropped tasks leave: {v}");
    admin.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_list_needs_the_credentials_other_routes_need() {
    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .bearer_token("tasks-T0ken")
        .start()
        .unwrap();
    let addr = admin.local_addr();
    assert_eq!(get(addr, "/debug/fdr/tasks", &[]).await.status, 401);
    let r = get(
        addr,
        "/debug/fdr/tasks",
        &[("authorization", "Bearer tasks-T0ken")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    admin.shutdown();
}
