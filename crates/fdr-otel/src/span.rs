//! Attributes that let an APM link an OpenTelemetry span to its fdr task: `fdr.task_id`, and
//! an "open execution trace" URL built from a template.

use std::fmt::Write as _;

use fdr_format::TaskId;
use opentelemetry::trace::SpanRef;
use opentelemetry::{Context, KeyValue};

/// The span attribute holding the fdr task id (an integer).
pub const TASK_ID_KEY: &str = "fdr.task_id";
/// The span attribute holding the "open execution trace" URL (set only when a template is
/// configured).
pub const TRACE_URL_KEY: &str = "fdr.trace_url";

/// A placeholder of a [`UrlTemplate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    TaskId,
    TraceId,
    SpanId,
    Pid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Hole(Hole),
}

/// Why a URL template was refused. Offsets count bytes from the template's start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlTemplateError {
    /// A `{` without a matching `}`.
    #[error("URL template byte {offset}: '{{' is never closed")]
    Unclosed {
        /// Where the `{` is.
        offset: usize,
    },
    /// A `}` that closes nothing.
    #[error("URL template byte {offset}: '}}' closes nothing (write '}}}}' for a literal one)")]
    StrayClose {
        /// Where the `}` is.
        offset: usize,
    },
    /// A placeholder this crate does not fill.
    #[error(
        "URL template byte {offset}: unknown placeholder {{{name}}} \
         (known: {{task_id}}, {{trace_id}}, {{span_id}}, {{pid}})"
    )]
    Unknown {
        /// Where the `{` is.
        offset: usize,
        /// The name between the braces.
        name: String,
    },
}

/// An "open execution trace" URL with placeholders, filled per span:
/// `{task_id}` (decimal fdr task id), `{trace_id}` (32 lowercase hex digits), `{span_id}`
/// (16 lowercase hex digits) and `{pid}` (this process's id); `{{` and `}}` are literal
/// braces. Every filled value is URL-safe as it is.
///
/// ```
/// use fdr_otel::UrlTemplate;
///
/// let t = UrlTemplate::new("https://fdr.example/open?pid={pid}&task={task_id}&trace={trace_id}")?;
/// assert!(UrlTemplate::new("https://fdr.example/{task}").is_err());
/// # Ok::<(), fdr_otel::UrlTemplateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    parts: Vec<Part>,
}

impl UrlTemplate {
    /// Parses a template; an unknown placeholder or an unbalanced brace is an error naming
    /// its byte offset.
    pub fn new(template: &str) -> Result<UrlTemplate, UrlTemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template.char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            match c {
                '{' if rest.peek().map(|&(_, c)| c) == Some('{') => {
                    rest.next();
                    text.push('{');
                }
                '}' if rest.peek().map(|&(_, c)| c) == Some('}') => {
                    rest.next();
                    text.push('}');
                }
                '}' => return Err(UrlTemplateError::StrayClose { offset: i }),
                '{' => {
                    let Some(len) = template[i + 1..].find('}') else {
                        return Err(UrlTemplateError::Unclosed { offset: i });
                    };
                    let name = &template[i + 1..i + 1 + len];
                    let hole = match name {
                        "task_id" => Hole::TaskId,
                        "trace_id" => Hole::TraceId,
                        "span_id" => Hole::SpanId,
                        "pid" => Hole::Pid,
                        _ => {
                            return Err(UrlTemplateError::Unknown {
                                offset: i,
                                name: name.into(),
                            });
                        }
                    };
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Hole(hole));
                    // Skip the name and the closing brace (all ASCII).
                    for _ in 0..=len {
                        rest.next();
                    }
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(UrlTemplate { parts })
    }

    /// The URL for `task` in the trace `trace_id`, span `span_id`.
    pub fn render(&self, task: TaskId, trace_id: [u8; 16], span_id: [u8; 8]) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Hole(Hole::TaskId) => {
                    let _ = write!(out, "{}", task.0);
                }
                Part::Hole(Hole::TraceId) => hex(&mut out, &trace_id),
                Part::Hole(Hole::SpanId) => hex(&mut out, &span_id),
                Part::Hole(Hole::Pid) => {
                    let _ = write!(out, "{}", std::process::id());
                }
            }
        }
        out
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

impl std::str::FromStr for UrlTemplate {
    type Err = UrlTemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UrlTemplate::new(s)
    }
}

/// Puts [`TASK_ID_KEY`] (and [`TRACE_URL_KEY`], with `url`) on `span`, if it is recording
/// and `task` is a task. Returns whether it did.
pub fn annotate_span(span: &SpanRef<'_>, task: TaskId, url: Option<&UrlTemplate>) -> bool {
    if task == TaskId::NONE || !span.is_recording() {
        return false;
    }
    // Task ids stay below 2^63 (dense from 1; tokio's tagged ids set bit 62).
    span.set_attribute(KeyValue::new(TASK_ID_KEY, task.0 as i64));
    if let Some(t) = url {
        let sc = span.span_context();
        let url = t.render(task, sc.trace_id().to_bytes(), sc.span_id().to_bytes());
        span.set_attribute(KeyValue::new(TRACE_URL_KEY, url));
    }
    true
}

/// [`annotate_span`] on the active span of `cx`.
///
/// ```
/// let task = fdr_recorder::task("job");
/// // With an SDK tracer, the span current here would get `fdr.task_id`.
/// let done = fdr_otel::annotate(&opentelemetry::Context::current(), task.id(), None);
/// assert!(!done, "no recording span is current");
/// ```
pub fn annotate(cx: &Context, task: TaskId, url: Option<&UrlTemplate>) -> bool {
    use opentelemetry::trace::TraceContextExt as _;
    annotate_span(&cx.span(), task, url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    #[test]
    fn fills_every_placeholder() {
        let t = UrlTemplate::new(
            "https://fdr.example/open?task={task_id}&trace={trace_id}&span={span_id}&pid={pid}",
        )
        .unwrap();
        assert_eq!(
            t.render(TaskId(42), TRACE, SPAN),
            format!(
                "https://fdr.example/open?task=42&trace=4bf92f3577b34da6a3ce929d0e0e4736\
                 &span=00f067aa0ba902b7&pid={}",
                std::process::id()
            )
        );
    }

    #[test]
    fn literal_braces_and_plain_text() {
        let t = UrlTemplate::new("x{{y}}z/{task_id}").unwrap();
        assert_eq!(t.render(TaskId(7), TRACE, SPAN), "x{y}z/7");
        let t = UrlTemplate::new("https://é.example/").unwrap();
        assert_eq!(t.render(TaskId(7), TRACE, SPAN), "https://é.example/");
        assert_eq!(
            UrlTemplate::new("").unwrap().render(TaskId(1), TRACE, SPAN),
            ""
        );
    }

    #[test]
    fn bad_templates_name_the_offset() {
        assert_eq!(
            UrlTemplate::new("https://x/{task}"),
            Err(UrlTemplateError::Unknown {
                offset: 10,
                name: "task".into()
            })
        );
        assert_eq!(
            UrlTemplate::new("https://x/{task_id"),
            Err(UrlTemplateError::Unclosed { offset: 10 })
        );
        assert_eq!(
            UrlTemplate::new("https://x/}"),
            Err(UrlTemplateError::StrayClose { offset: 10 })
        );
        assert_eq!(
            UrlTemplate::new("a{}").unwrap_err().to_string(),
            "URL template byte 1: unknown placeholder {} \
             (known: {task_id}, {trace_id}, {span_id}, {pid})"
        );
    }
}
