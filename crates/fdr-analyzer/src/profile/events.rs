//! The profile's handling of one event, one function per family: which events count
//! (window, thread limit, a thread's first data), the thread's activity, task lifecycles,
//! wakes, polls, blocks, regions, parks, OS samples and stacks, loss.

use fdr_format::{
    BlockReason, EventKind, Kind, LossReason, SampleCause, SiteId, StrId, TaskId, ThreadId,
};

use crate::waits::Waker;

use super::{
    LONG_POLL_NS, LaneId, LiveTask, OpenBlock, PollRecord, Profile, Slice, SliceKind, TaskKind,
    ThreadStats, UNSEEN_NAME, live_entry, reason_index, stats_entry,
};
use crate::osview::ScopeKey;
use crate::stream::EventCx;

impl Profile {
    /// One event of the trace, in time order.
    pub(super) fn on_event(&mut self, cx: &EventCx<'_>) {
        if !self.admit(cx) {
            return;
        }
        let (ns, thread) = (cx.ns, cx.thread);
        match cx.kind {
            EventKind::TaskCreate {
                task,
                parent,
                name,
                site,
            } => self.task_create(task, parent, name, site, ns),
            EventKind::UserTaskBegin { task, parent, name } => {
                self.user_task_begin(task, parent, name, thread, ns)
            }
            EventKind::UserTaskEnd { task } => self.user_task_end(task, cx),
            EventKind::TaskDrop { task } => self.task_drop(task, cx),
            EventKind::Wake { task, waker } => self.wake(task, waker, thread, ns),
            EventKind::PollStart { task } => self.poll_start(task, thread, ns),
            EventKind::PollEnd { task, ready } => self.poll_end(task, ready, thread, ns),
            EventKind::BlockBegin { reason, site } => {
                self.block_begin(reason, site, cx.task, thread, ns)
            }
            EventKind::BlockEnd => self.block_end(thread, ns),
            EventKind::RegionBegin { name } => self.region_begin(name, thread, ns),
            EventKind::RegionEnd { name } => self.region_end(name, thread, ns),
            EventKind::Park => self.park(thread, ns),
            EventKind::Unpark => self.unpark(thread, ns),
            EventKind::OsSample {
                thread: sampled,
                cause,
                cpu_ns,
                runq_ns,
                state,
                ..
            } => {
                if sampled == thread
                    && let Some(runq) = runq_ns
                {
                    self.own_sample(cause, runq);
                }
                let parked = self.parked_at(sampled, ns);
                self.os
                    .sample(sampled, ns, cause, (cpu_ns, runq_ns, state), parked);
            }
            EventKind::Stack {
                thread: sampled,
                cause,
                frames,
                age_ticks,
                ..
            } => {
                let at = age_ticks.map(|a| ns.saturating_sub(cx.clock.dur_ns(a)));
                self.os.stack(sampled, cause, frames, at)
            }
            EventKind::AsyncRegionBegin { region, task, name } => {
                let mark = self.window_mark();
                if let Some(t) = self.live.get_mut(&task)
                    && !t.caught_up(mark).wait.region_begin(region, name)
                {
                    self.waits.phases_left_out += 1;
                }
            }
            EventKind::AsyncRegionEnd { region, task } => {
                let mark = self.window_mark();
                if let Some(t) = self.live.get_mut(&task) {
                    t.caught_up(mark).wait.region_end(region);
                }
            }
            EventKind::OtelLink { task, trace_id, .. } => {
                if let Some(t) = self.live.get_mut(&task) {
                    t.otel = Some(trace_id);
                }
            }
            EventKind::Loss {
                reason,
                events,
                bytes,
            } => self.loss(reason, events, bytes, ns),
            _ => {}
        }
    }

    /// Counts the event and tracks its thread's activity; false when the profile leaves
    /// it out (a metric sample, outside the window, a thread past the limit, loss ahead of
    /// a thread's history).
    fn admit(&mut self, cx: &EventCx<'_>) -> bool {
        let ns = cx.ns;
        let k = cx.kind.index();
        if k == Kind::Metric.index()
            && let EventKind::Metric { name, value } = cx.kind
        {
            if cx.tables.string(name) == Some(fdr_format::event::METRIC_CPU_PROFILE_HZ) {
                self.os.cpu_rate(value);
            }
            // Written by fdr's samplers on threads of their own: no thread's activity.
            self.kinds[k] += 1;
            self.late_events += cx.late as u64;
            return false;
        }
        if !self.follow_window(ns, k) {
            return false;
        }
        let Some(slot) = self.admit_thread(cx.thread, ns) else {
            self.kinds[k] += 1;
            self.left_out.thread_events += 1;
            return false;
        };
        let mark = self.window_mark();
        let mut th = self.stream_threads[slot].1.caught_up(mark);
        th.last_ns = th.last_ns.max(ns);
        if !th.data {
            if let EventKind::Loss { reason, events, .. } = cx.kind {
                // Ahead of the thread's history in the trace (or a thread wholly gone): not
                // inside the window.
                self.kinds[k] += 1;
                self.window.note_lost_before(reason.as_str(), events);
                return false;
            }
            th.data = true;
            if matches!(cx.kind, EventKind::ThreadStart) {
                th.known_from_ns = Some(ns);
            }
            if self.opts.window == crate::window::WindowSpec::Active
                && !matches!(cx.kind, EventKind::ThreadStart)
                && ns > self.window.from_ns
                && !crate::threads::is_own(cx.tables, cx.thread)
            {
                // A thread whose history in the trace was cut starts here: so does the
                // common window.
                self.reset_at(ns, crate::window::Start::CommonStart);
                let mark = self.window_mark();
                th = self.stream_threads[slot].1.caught_up(mark);
            }
        }
        self.kinds[k] += 1;
        self.late_events += cx.late as u64;
        if ACTIVITY_KINDS >> k & 1 != 0 {
            activity(th, cx);
        }
        true
    }

    #[inline(never)]
    fn task_create(&mut self, task: TaskId, parent: TaskId, name: StrId, site: SiteId, ns: u64) {
        self.created_dropped.0 += 1;
        let otel = self.parent_otel(parent);
        let mut t = LiveTask::new(TaskKind::Async, name, site, ns, true);
        t.scheduled_at = Some(ns);
        t.otel = otel;
        t.wait.parent = parent;
        if self.insert_task(task, t) {
            self.live_created += 1;
            self.live_series.push(ns, self.live_created);
        }
    }

    #[inline(never)]
    fn user_task_begin(
        &mut self,
        task: TaskId,
        parent: TaskId,
        name: StrId,
        thread: ThreadId,
        ns: u64,
    ) {
        let otel = self.parent_otel(parent);
        let mut t = LiveTask::new(TaskKind::User, name, SiteId(0), ns, false);
        t.otel = otel;
        self.insert_task(task, t);
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        if th.depth == 1 {
            th.outer_name = name;
        }
    }

    #[inline(never)]
    fn user_task_end(&mut self, task: TaskId, cx: &EventCx<'_>) {
        let (ns, thread) = (cx.ns, cx.thread);
        self.remove_live(task, |p, t| {
            p.slice(Slice {
                lane: LaneId::Thread(thread),
                kind: SliceKind::UserTask,
                name: t.name,
                block: None,
                start_ns: t.start_ns,
                dur_ns: ns.saturating_sub(t.start_ns),
            });
            p.finish_removed(task, t, ns, cx.tables);
        });
    }

    #[inline(never)]
    fn task_drop(&mut self, task: TaskId, cx: &EventCx<'_>) {
        let (ns, thread) = (cx.ns, cx.thread);
        self.created_dropped.1 += 1;
        // One look-up: the task leaves the live set here.
        self.remove_live(task, |p, t| {
            debug_assert_eq!(p.stream_threads[p.cur_slot].0, thread);
            let th = &mut p.stream_threads[p.cur_slot].1;
            if th.depth == 0 {
                th.wake.last_done = Some((task, t.name, t.wait.parent, ns));
            }
            p.finish_removed(task, t, ns, cx.tables);
        });
    }

    /// The OpenTelemetry trace of a new task's parent (none for no parent: no lookup).
    #[inline]
    fn parent_otel(&self, parent: TaskId) -> Option<[u8; 16]> {
        if parent == TaskId::NONE {
            return None;
        }
        self.live.get(&parent).and_then(|p| p.otel)
    }

    #[inline(never)]
    fn wake(&mut self, task: TaskId, waker: TaskId, thread: ThreadId, ns: u64) {
        let mark = self.window_mark();
        let by = self.waker_of(task, waker, thread, ns);
        if let Some(t) = live_entry(
            &mut self.live,
            &mut self.left_out,
            mark,
            task,
            TaskKind::Async,
            ns,
        ) {
            if t.scheduled_at.is_none() {
                t.scheduled_at = Some(ns);
            }
            let in_poll = t.poll_start.is_some();
            let ended = self.waits.wake(task, t.name, &mut t.wait, in_poll, by, ns);
            let name = t.name;
            if let (Some(dur), Waker::Driver) = (ended, by) {
                debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
                let th = &mut self.stream_threads[self.cur_slot].1;
                if th.parked_since.is_some() {
                    self.wake_delay.driver_await(&mut th.cycle, name, dur);
                }
            }
        }
    }

    #[inline(never)]
    fn poll_start(&mut self, task: TaskId, thread: ThreadId, ns: u64) {
        let mark = self.window_mark();
        let mut name = UNSEEN_NAME;
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        th.wake.worker = true;
        th.wake.last_done = None;
        let host = th.poll.map(|p| p.0).filter(|&h| h != task);
        if let Some(h) = host
            && let Some(h) = self.live.get(&h)
        {
            self.waits.host(h.name);
        }
        if let Some(t) = live_entry(
            &mut self.live,
            &mut self.left_out,
            mark,
            task,
            TaskKind::Async,
            ns,
        ) {
            self.waits.poll_start(task, t.name, &mut t.wait, ns);
            t.poll_start = Some(ns);
            t.polls = t.polls.saturating_add(1);
            name = t.name;
            let lat = t.scheduled_at.take().map(|w| ns.saturating_sub(w));
            if let Some(lat) = lat {
                t.wait_ns = t.wait_ns.saturating_add(lat);
                self.sched_latency.record(lat);
                if lat >= self.worst_latency.0 {
                    self.worst_latency = (lat, ns, task, name);
                }
            }
        }
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        th.poll = Some((task, ns));
        if th.depth == 1 {
            th.outer_name = name;
        }
    }

    #[inline(never)]
    fn poll_end(&mut self, task: TaskId, ready: bool, thread: ThreadId, ns: u64) {
        let mark = self.window_mark();
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        let start = match th.poll.take() {
            Some((t, s)) if t == task => Some(s),
            _ => None,
        };
        let mut start = start;
        let (mut name, mut site) = (UNSEEN_NAME, SiteId(0));
        let t = live_entry(
            &mut self.live,
            &mut self.left_out,
            mark,
            task,
            TaskKind::Async,
            ns,
        );
        if let Some(t) = t {
            start = start.or(t.poll_start.take());
            t.poll_start = None;
            (name, site) = (t.name, t.site);
            t.wait.poll_end(ready, ns);
            if ready {
                debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
                let th = &mut self.stream_threads[self.cur_slot].1;
                th.wake.last_done = Some((task, name, t.wait.parent, ns));
            }
            if let Some(start) = start {
                t.running_ns = t.running_ns.saturating_add(ns.saturating_sub(start));
            }
        }
        let Some(start) = start else {
            return;
        };
        let d = ns.saturating_sub(start);
        self.poll_duration.record(d);
        if d >= LONG_POLL_NS {
            let parked = self.parked_at(thread, ns);
            self.os
                .scope_closed(thread, ScopeKey::Poll(name), start, ns, parked);
            self.long_polls.0 += 1;
            self.long_polls.1 = self.long_polls.1.saturating_add(d);
        }
        self.top_poll(PollRecord {
            dur_ns: d,
            start_ns: start,
            task,
            name,
            site,
            thread,
        });
        if self.opts.timeline_slices == 0 {
            return;
        }
        for lane in [LaneId::Thread(thread), LaneId::Task(task)] {
            self.slice(Slice {
                lane,
                kind: SliceKind::Poll,
                name,
                block: None,
                start_ns: start,
                dur_ns: d,
            });
        }
    }

    #[inline(never)]
    fn block_begin(
        &mut self,
        reason: BlockReason,
        site: SiteId,
        task: TaskId,
        thread: ThreadId,
        ns: u64,
    ) {
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        let in_poll = th.poll.is_some_and(|(t, _)| t == task);
        th.block = Some(OpenBlock {
            reason,
            site,
            start: ns,
            task,
            in_poll,
        });
    }

    #[inline(never)]
    fn block_end(&mut self, thread: ThreadId, ns: u64) {
        let mark = self.window_mark();
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        let Some(b) = th.block.take() else {
            return;
        };
        let d = ns.saturating_sub(b.start);
        th.blocked_ns = th.blocked_ns.saturating_add(d);
        let r = reason_index(b.reason);
        if d >= LONG_POLL_NS {
            let parked = th.parked_ns;
            self.os
                .scope_closed(thread, ScopeKey::Block(b.site, r), b.start, ns, parked);
        }
        if r <= 1 {
            th.blocked_lock_ns = th.blocked_lock_ns.saturating_add(d);
        }
        if th.depth > 0 {
            th.blocked_active_ns = th.blocked_active_ns.saturating_add(d);
        }
        if b.task != TaskId::NONE
            && let Some(t) = self.live.get_mut(&b.task)
        {
            let t = t.caught_up(mark);
            t.blocked_ns[r] = t.blocked_ns[r].saturating_add(d);
            if b.in_poll {
                t.running_ns = t.running_ns.saturating_sub(d);
            }
        }
        if let Some(s) = stats_entry(
            &mut self.blocking,
            (b.site, r),
            &mut self.left_out.blocking_sites,
        ) {
            s.record(b.start, d);
            if b.in_poll {
                self.blocking_in_poll
                    .entry((b.site, r))
                    .or_default()
                    .record(d);
            }
        }
        self.slice(Slice {
            lane: LaneId::Thread(thread),
            kind: SliceKind::Block,
            name: StrId(0),
            block: Some((b.reason, b.site)),
            start_ns: b.start,
            dur_ns: d,
        });
    }

    #[inline(never)]
    fn region_begin(&mut self, name: StrId, thread: ThreadId, ns: u64) {
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        if !self.open_regions.push(&mut th.regions, (name, ns)) {
            self.left_out.regions_unopened += 1;
        }
    }

    #[inline(never)]
    fn region_end(&mut self, name: StrId, thread: ThreadId, ns: u64) {
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        let Some(pos) = th.regions.iter().rposition(|r| r.0 == name) else {
            return;
        };
        let start = th.regions[pos].1;
        self.open_regions.truncate(&mut th.regions, pos);
        let d = ns.saturating_sub(start);
        if d >= LONG_POLL_NS {
            let parked = th.parked_ns;
            self.os
                .scope_closed(thread, ScopeKey::Region(name), start, ns, parked);
        }
        if let Some(s) = stats_entry(&mut self.regions, name, &mut self.left_out.region_names) {
            s.record(start, d);
        }
        self.slice(Slice {
            lane: LaneId::Thread(thread),
            kind: SliceKind::Region,
            name,
            block: None,
            start_ns: start,
            dur_ns: d,
        });
    }

    #[inline(never)]
    fn park(&mut self, thread: ThreadId, ns: u64) {
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        th.wake.worker = true;
        th.wake.last_done = None;
        th.parked_since = Some(ns);
        th.parks = th.parks.saturating_add(1);
        self.wake_delay.park(&mut th.cycle);
    }

    /// A worker's sample of itself at a park or an unpark ([`crate::wake_delay`]).
    fn own_sample(&mut self, cause: SampleCause, runq_ns: u64) {
        let th = &mut self.stream_threads[self.cur_slot].1;
        match cause {
            SampleCause::Park => crate::wake_delay::WakeDelay::park_sample(&mut th.cycle, runq_ns),
            SampleCause::Unpark => self.wake_delay.unpark_sample(&mut th.cycle, runq_ns),
            _ => {}
        }
    }

    #[inline(never)]
    fn unpark(&mut self, thread: ThreadId, ns: u64) {
        debug_assert_eq!(self.stream_threads[self.cur_slot].0, thread);
        let th = &mut self.stream_threads[self.cur_slot].1;
        if let Some(s) = th.parked_since.take() {
            let d = ns.saturating_sub(s);
            th.parked_ns = th.parked_ns.saturating_add(d);
            self.slice(Slice {
                lane: LaneId::Thread(thread),
                kind: SliceKind::Park,
                name: StrId(0),
                block: None,
                start_ns: s,
                dur_ns: d,
            });
        }
    }

    #[inline(never)]
    fn loss(&mut self, reason: LossReason, events: u64, bytes: u64, ns: u64) {
        let l = self.loss.entry(reason.as_str()).or_default();
        l.0 += 1;
        l.1 = l.1.saturating_add(events);
        l.2 = l.2.saturating_add(bytes);
        let w = self.loss_window_ns.get_or_insert((ns, ns));
        w.1 = w.1.max(ns);
    }
}

/// The set of `kinds`, as bits by [`Kind::index`].
pub(super) const fn kind_bits(kinds: &[Kind]) -> u32 {
    let mut bits = 0;
    let mut i = 0;
    while i < kinds.len() {
        bits |= 1 << kinds[i] as u32;
        i += 1;
    }
    bits
}

const _: () = assert!(fdr_format::EVENT_KIND_COUNT <= 32);

/// The kinds [`activity`] acts on: the others skip it.
const ACTIVITY_KINDS: u32 = kind_bits(&[
    Kind::PollStart,
    Kind::UserTaskBegin,
    Kind::PollEnd,
    Kind::UserTaskEnd,
    Kind::Park,
    Kind::Unpark,
]);

/// The kinds that start work: the active window ([`crate::window`]) restarts after an idle
/// gap between two of them.
pub(super) const WORK_KINDS: u32 = kind_bits(&[
    Kind::TaskCreate,
    Kind::PollStart,
    Kind::UserTaskBegin,
    Kind::BlockBegin,
    Kind::RegionBegin,
]);

/// A thread's activity: the depth of polls and user tasks open on it, its active time (a
/// task current, outermost first), and from when its task state is known. Inlined into
/// the per-event step (a call there costs more than this does).
#[inline(always)]
fn activity(th: &mut ThreadStats, cx: &EventCx<'_>) {
    let ns = cx.ns;
    match cx.kind {
        EventKind::PollStart { .. } | EventKind::UserTaskBegin { .. } => {
            th.known_from_ns.get_or_insert(ns);
            if th.depth == 0 {
                th.active_since = ns;
                th.outer_task = cx.task;
                th.outer_name = UNSEEN_NAME;
            }
            th.depth += 1;
        }
        EventKind::PollEnd { .. } | EventKind::UserTaskEnd { .. } if th.depth > 0 => {
            th.depth -= 1;
            if th.depth == 0 {
                let d = ns.saturating_sub(th.active_since);
                th.active_ns = th.active_ns.saturating_add(d);
                if d > th.longest_active.0 {
                    th.longest_active = (d, th.active_since, th.outer_task, th.outer_name);
                }
            }
        }
        EventKind::PollEnd { .. } | EventKind::UserTaskEnd { .. } => {
            crate::threads::unmatched_end(th, cx.task, ns)
        }
        EventKind::Park | EventKind::Unpark => {
            th.known_from_ns.get_or_insert(ns);
        }
        _ => {}
    }
}
