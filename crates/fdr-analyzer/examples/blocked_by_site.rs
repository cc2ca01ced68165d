//! The goroutine-state aggregator, for fdr: cumulative blocked time per site and reason,
//! top N, against the public streaming API.
//!
//! `cargo run -p fdr-analyzer --example blocked_by_site -- TRACE.fdr [N]`

use std::collections::HashMap;

use fdr_analyzer::{EventCx, ReadOptions, Visitor, read_file};
use fdr_format::{BlockReason, EventKind, SiteId, ThreadId};

#[derive(Default)]
struct Blocked {
    open: HashMap<ThreadId, (BlockReason, SiteId, u64)>,
    total: HashMap<(String, &'static str), (u64, u64)>,
}

impl Visitor for Blocked {
    fn event(&mut self, cx: &EventCx<'_>) {
        match cx.kind {
            EventKind::BlockBegin { reason, site } => {
                self.open.insert(cx.thread, (reason, site, cx.ns));
            }
            EventKind::BlockEnd => {
                if let Some((reason, site, start)) = self.open.remove(&cx.thread) {
                    let key = (cx.tables.site_name(site).into_owned(), reason.as_str());
                    let e = self.total.entry(key).or_default();
                    e.0 += 1;
                    e.1 += cx.ns.saturating_sub(start);
                }
            }
            _ => {}
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: blocked_by_site TRACE.fdr [N]")?;
    let top: usize = args.next().map_or(Ok(10), |n| n.parse())?;
    let mut b = Blocked::default();
    let out = read_file(path.as_ref(), &mut b, ReadOptions::default())?;
    let mut rows: Vec<_> = b.total.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
    for ((site, reason), (count, ns)) in rows.into_iter().take(top) {
        println!(
            "{:>12.3} ms {count:>8}x  {reason:<8} {site}",
            ns as f64 / 1e6
        );
    }
    if let Some(e) = out.error {
        eprintln!("trace damaged {e}");
    }
    Ok(())
}
