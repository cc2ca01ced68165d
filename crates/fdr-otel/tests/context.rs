//! Tasks started from a `traceparent` value or an OpenTelemetry `Context`, outside any
//! middleware: the decoded trace has the task and its link, a bad value begins no task, and
//! the analyzer's trace-id filter also finds the tasks created under a linked one. (Own test
//! binary: it installs the global recorder; tests run one at a time.)

mod common;

use common::{Trace, dump, runtime, serial, tasks_for_trace};
use fdr_otel::{TraceParent, TraceParentError};
use fdr_recorder::task::FdrFutureExt as _;
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;

const TRACEPARENT: &str = "00-7bf92f3577b34da6a3ce929d0e0e4736-20f067aa0ba902b7-00";

#[test]
fn a_traceparent_value_starts_a_linked_task_and_a_bad_one_none() {
    let _g = serial();
    let id = {
        let task = fdr_otel::task_from_traceparent("from header", TRACEPARENT).unwrap();
        let _r = fdr_recorder::region("work");
        task.id()
    };
    let bad = fdr_otel::task_from_traceparent(
        "from bad header",
        "00-7bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-00",
    );
    assert_eq!(bad.unwrap_err(), TraceParentError::ZeroParentId);

    let trace = Trace::read(&dump());
    assert_eq!(trace.one("from header"), id.0);
    let ids = TraceParent::parse(TRACEPARENT).unwrap();
    assert_eq!(trace.links_of(id.0), vec![(ids.trace_id, ids.span_id)]);
    assert!(trace.named("from bad header").is_empty());
    assert!(trace.regions.iter().any(|(t, n)| *t == id.0 && n == "work"));
}

#[test]
fn a_future_traced_in_a_context_links_it_and_its_children() {
    let _g = serial();
    let ids = TraceParent::parse(TRACEPARENT).unwrap();
    let cx = Context::new().with_remote_span_context(ids.to_span_context());
    let rt = runtime();
    let parent = rt.block_on(async {
        let request = fdr_otel::traced_in_context(
            async {
                // A task created inside the request: no link of its own.
                async { tokio::task::yield_now().await }
                    .traced("ctx child")
                    .await;
            },
            "ctx request",
            &cx,
        );
        let id = request.id();
        request.await;
        id
    });
    // Without a span in the context, the task is made but not linked.
    let lone = rt.block_on(async {
        let t = fdr_otel::traced_in_context(async {}, "ctx lone", &Context::new());
        let id = t.id();
        t.await;
        id
    });
    drop(rt);

    let bytes = dump();
    let trace = Trace::read(&bytes);
    let request = trace.one("ctx request");
    assert_eq!(request, parent.0);
    assert_eq!(trace.links_of(request), vec![(ids.trace_id, ids.span_id)]);
    let child = trace.one("ctx child");
    assert_eq!(trace.tasks[&child].parent, request);
    assert!(trace.links_of(child).is_empty());
    assert_eq!(trace.one("ctx lone"), lone.0);
    assert!(trace.links_of(lone.0).is_empty());

    let found = tasks_for_trace(&bytes, ids.trace_id);
    assert!(found.contains("ctx request"), "{found:?}");
    assert!(
        found.contains("ctx child"),
        "children inherit the link: {found:?}"
    );
    assert!(!found.contains("ctx lone"), "{found:?}");
}
