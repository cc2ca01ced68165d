//! `--json` outputs that carry the analyzed window (`fdr sched`, `fdr diagnose`): the view's
//! fields beside `window`, the window's row with the wall clock of the trace's start, the
//! origin of the view's relative times.

use fdr_analyzer::window::{Window, WindowRow};
use serde::Serialize;
use serde_json::Value;

/// The analyzed window and where its times count from.
#[derive(Serialize)]
struct WindowWithWall {
    #[serde(flatten)]
    window: WindowRow,
    /// The wall clock of the trace's start (Unix ns), `null` without a clock sync.
    trace_start_wall_unix_ns: Option<i64>,
}

/// A view with its window.
#[derive(Serialize)]
struct Windowed<T> {
    window: WindowWithWall,
    #[serde(flatten)]
    view: T,
}

/// The fields of `fdr diagnose --json` besides its window.
#[derive(Serialize)]
pub(crate) struct DiagnoseView {
    /// The rules' outcomes, ranked.
    pub(crate) outcomes: Value,
    /// What the profile left out.
    pub(crate) truncated: Value,
}

/// `view` (an object without a `window` field) with `window` and the wall clock of the
/// trace's start, `origin_wall_unix_ns`.
pub(crate) fn windowed(
    view: impl Serialize,
    window: &Window,
    origin_wall_unix_ns: Option<i128>,
) -> serde_json::Result<Value> {
    serde_json::to_value(Windowed {
        window: WindowWithWall {
            window: window.row(),
            trace_start_wall_unix_ns: origin_wall_unix_ns
                .map(|w| w.clamp(i64::MIN as i128, i64::MAX as i128) as i64),
        },
        view,
    })
}
