//! The sentinel's decisions, apart from its threads and the clock: fed a sample and the time
//! since the sentinel started, it says which rules breach and which of them may dump under
//! their limits and the global ones. Driven by the watcher thread in real time, and by tests
//! in simulated time.
//!
//! A trigger holds its place under the limits (cooldown, dumps per window) from its sample
//! on, and keeps it only if its dump is written: [`Engine::settle`] says how it went, and a
//! dump that could not be written gives its place back, so the next breach can dump. Until
//! then the rule's breaches are [`Suppressed::Busy`].

use std::collections::VecDeque;
use std::time::Duration;

use crate::metric::Metrics;
use crate::rule::{Limits, Rule};

/// Why a breach made no dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// Within the cooldown after a dump (the rule's or the sentinel's).
    Cooldown,
    /// The rule's or the sentinel's `max_dumps` within the window was reached.
    Limit,
    /// Past the rule's or the sentinel's lifetime.
    Lifetime,
    /// The rule's previous trigger was not settled yet (its delay, a snapshot it waits
    /// for, a slow store), or the sentinel's dump thread was busy with another rule's.
    Busy,
}

/// A rule's trigger: dump now (after the rule's delay), then [`Engine::settle`] it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// The rule.
    pub rule: Rule,
    /// The statistic's value that breached.
    pub value: f64,
    /// The sample's time (since the start) the trigger holds its place under the limits
    /// from.
    pub at: Duration,
    /// The rule's index in the engine.
    index: usize,
}

/// What one sample decided.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Rules that may dump.
    pub triggers: Vec<Trigger>,
    /// Rules held for enough samples that a limit stopped.
    pub suppressed: Vec<(String, Suppressed)>,
    /// Every rule's statistic at this sample, for the incident's metadata.
    pub values: Vec<(String, f64)>,
    /// Rules that could not be evaluated (a statistic that does not fit the metric's kind),
    /// reported once per rule.
    pub errors: Vec<String>,
    /// Rules whose metric the sample does not have (a misspelled name, a series not
    /// created yet), reported once per rule, with the sample's nearest names.
    pub unknown_metrics: Vec<String>,
}

/// Dump times within a window, the last dump, and the limits they are held to.
#[derive(Debug)]
struct Limiter {
    limits: Limits,
    dumps: VecDeque<Duration>,
}

impl Limiter {
    fn new(limits: Limits) -> Self {
        Limiter {
            limits,
            dumps: VecDeque::new(),
        }
    }

    fn check(&mut self, now: Duration) -> Result<(), Suppressed> {
        if self.limits.lifetime.is_some_and(|l| now > l) {
            return Err(Suppressed::Lifetime);
        }
        while self
            .dumps
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= self.limits.window)
        {
            self.dumps.pop_front();
        }
        if self
            .dumps
            .back()
            .is_some_and(|t| now.saturating_sub(*t) < self.limits.cooldown)
        {
            return Err(Suppressed::Cooldown);
        }
        if self.dumps.len() >= self.limits.max_dumps as usize {
            return Err(Suppressed::Limit);
        }
        Ok(())
    }

    fn note(&mut self, now: Duration) {
        self.dumps.push_back(now);
    }

    /// Gives back the place a dump noted `at` took (if the window still holds it).
    fn release(&mut self, at: Duration) {
        if let Some(i) = self.dumps.iter().rposition(|t| *t == at) {
            self.dumps.remove(i);
        }
    }
}

#[derive(Debug)]
struct RuleState {
    rule: Rule,
    limiter: Limiter,
    consecutive: u32,
    breaching: bool,
    error_reported: bool,
    unknown_reported: bool,
    /// A trigger not settled yet.
    pending: bool,
}

/// The rules' state across samples.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<RuleState>,
    global: Limiter,
    previous: Option<(Duration, Metrics)>,
}

impl Engine {
    /// Rules under their own limits and `global` across them; time starts at zero.
    pub fn new(rules: Vec<Rule>, global: Limits) -> Engine {
        Engine {
            rules: rules
                .into_iter()
                .map(|rule| RuleState {
                    limiter: Limiter::new(rule.limits),
                    rule,
                    consecutive: 0,
                    breaching: false,
                    error_reported: false,
                    unknown_reported: false,
                    pending: false,
                })
                .collect(),
            global: Limiter::new(global),
            previous: None,
        }
    }

    /// Evaluates every rule on `metrics`, sampled `now` after the start.
    pub fn step(&mut self, now: Duration, metrics: Metrics) -> Step {
        let mut step = Step::default();
        let before = self.previous.as_ref();
        let elapsed = before.map_or(Duration::ZERO, |(t, _)| now.saturating_sub(*t));
        for (index, r) in self.rules.iter_mut().enumerate() {
            let value = match crate::metric::select(&metrics, &r.rule.metric).as_ref() {
                None => {
                    if !std::mem::replace(&mut r.unknown_reported, true) {
                        let near = crate::metric::near_names(
                            &r.rule.metric,
                            metrics.keys().map(String::as_str),
                        );
                        step.unknown_metrics.push(format!(
                            "rule `{}` reads `{}`, which this sample does not have (a name \
                             not spelled as the sample's, or a series not created yet); it \
                             cannot fire until it appears; nearest names: {}",
                            r.rule.name,
                            r.rule.metric,
                            if near.is_empty() {
                                "none".to_owned()
                            } else {
                                near.join(", ")
                            }
                        ));
                    }
                    Ok(None)
                }
                Some(m) => r.rule.stat.of(
                    before
                        .and_then(|(_, b)| crate::metric::select(b, &r.rule.metric))
                        .as_ref(),
                    m,
                    elapsed,
                ),
            };
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    if !std::mem::replace(&mut r.error_reported, true) {
                        step.errors
                            .push(format!("rule `{}` ({}): {e}", r.rule.name, r.rule.metric));
                    }
                    None
                }
            };
            if let Some(v) = value {
                step.values.push((r.rule.name.clone(), v));
            }
            r.breaching = value.is_some_and(|v| r.rule.breaches(v));
            if !r.breaching {
                r.consecutive = 0;
                continue;
            }
            r.consecutive = r.consecutive.saturating_add(1);
            if r.consecutive < r.rule.for_samples {
                continue;
            }
            if r.pending {
                step.suppressed
                    .push((r.rule.name.clone(), Suppressed::Busy));
                continue;
            }
            // Held long enough: the rule's limits, then the sentinel's.
            let allowed = r.limiter.check(now).and_then(|()| self.global.check(now));
            match allowed {
                Ok(()) => {
                    r.limiter.note(now);
                    self.global.note(now);
                    r.consecutive = 0;
                    r.pending = true;
                    step.triggers.push(Trigger {
                        rule: r.rule.clone(),
                        value: value.unwrap_or_default(),
                        at: now,
                        index,
                    });
                }
                Err(why) => step.suppressed.push((r.rule.name.clone(), why)),
            }
        }
        self.previous = Some((now, metrics));
        step
    }

    /// How `trigger`'s dump went: `written`, it keeps its place under the limits; not, the
    /// place is given back (no cooldown, no dump counted against the window) and the rule
    /// may trigger again at its next breach.
    pub fn settle(&mut self, trigger: &Trigger, written: bool) {
        let Some(r) = self.rules.get_mut(trigger.index) else {
            return;
        };
        r.pending = false;
        if !written {
            r.limiter.release(trigger.at);
            self.global.release(trigger.at);
        }
    }

    /// Whether any rule breached at the last sample.
    pub fn degraded(&self) -> bool {
        self.rules.iter().any(|r| r.breaching)
    }

    /// The rules that breached at the last sample.
    pub fn breaching(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.breaching).map(|r| &r.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::MetricValue;
    use crate::rule::Stat;

    fn gauge(v: f64) -> Metrics {
        Metrics::from([("queue_depth".to_owned(), MetricValue::Gauge(v))])
    }

    const S: Duration = Duration::from_secs(1);

    /// Settles a step's triggers as the sentinel would once their dumps are done; whether
    /// there were any.
    fn settle(e: &mut Engine, step: &Step, written: bool) -> bool {
        for t in &step.triggers {
            e.settle(t, written);
        }
        !step.triggers.is_empty()
    }

    #[test]
    fn a_rule_fires_after_n_consecutive_breaches_and_rearms() {
        let rule = Rule::above("deep", "queue_depth", Stat::Value, 10.0)
            .for_samples(3)
            .cooldown(Duration::ZERO)
            .max_dumps(100, Duration::from_secs(3600));
        let global = Limits {
            cooldown: Duration::ZERO,
            ..Limits::GLOBAL
        };
        let mut e = Engine::new(vec![rule], global);
        let fired: Vec<bool> = [20.0, 20.0, 5.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let step = e.step(S * i as u32, gauge(*v));
                settle(&mut e, &step, true)
            })
            .collect();
        // The third breach in a row fires (not across the dip), then three more re-arm it.
        assert_eq!(
            fired,
            [false, false, false, false, false, true, false, false, true]
        );
        assert!(e.degraded());
        e.step(S * 9, gauge(1.0));
        assert!(!e.degraded());
    }

    #[test]
    fn the_global_limit_holds_across_rules() {
        let r = |n: &str| {
            Rule::above(n, "queue_depth", Stat::Value, 10.0)
                .cooldown(Duration::ZERO)
                .max_dumps(100, Duration::from_secs(3600))
        };
        let global = Limits {
            cooldown: Duration::from_secs(10),
            max_dumps: 2,
            window: Duration::from_secs(60),
            lifetime: None,
        };
        let mut e = Engine::new(vec![r("a"), r("b")], global);
        let s = e.step(Duration::ZERO, gauge(50.0));
        assert_eq!(s.triggers.len(), 1, "one dump per sample across rules");
        assert_eq!(s.suppressed, [("b".to_owned(), Suppressed::Cooldown)]);
        settle(&mut e, &s, true);
        let s = e.step(S * 10, gauge(50.0));
        assert_eq!(s.triggers.len(), 1);
        settle(&mut e, &s, true);
        let s = e.step(S * 20, gauge(50.0));
        assert!(s.triggers.is_empty());
        assert!(s.suppressed.contains(&("a".to_owned(), Suppressed::Limit)));
        // The window slides: the first dump leaves it at 60 s.
        assert_eq!(e.step(S * 60, gauge(50.0)).triggers.len(), 1);
    }

    #[test]
    fn only_a_written_dump_spends_the_limits() {
        let rule = Rule::above("deep", "queue_depth", Stat::Value, 10.0)
            .cooldown(Duration::from_secs(3600))
            .max_dumps(1, Duration::from_secs(3600))
            .lifetime(Duration::from_secs(100));
        let global = Limits {
            cooldown: Duration::from_secs(3600),
            max_dumps: 1,
            window: Duration::from_secs(3600),
            lifetime: None,
        };
        let mut e = Engine::new(vec![rule], global);
        let first = e.step(S, gauge(50.0));
        assert_eq!(first.triggers.len(), 1);
        // Until its dump is settled, the rule's breaches wait for it.
        let s = e.step(S * 2, gauge(50.0));
        assert_eq!(s.suppressed, [("deep".to_owned(), Suppressed::Busy)]);
        // Its dump could not be written: no cooldown, no window, no global limit spent.
        e.settle(&first.triggers[0], false);
        let second = e.step(S * 3, gauge(50.0));
        assert_eq!(second.triggers.len(), 1, "{second:?}");
        assert_eq!(second.triggers[0].at, S * 3);
        // Written: now the limits hold.
        e.settle(&second.triggers[0], true);
        let s = e.step(S * 4, gauge(50.0));
        assert_eq!(s.suppressed, [("deep".to_owned(), Suppressed::Cooldown)]);
        assert!(s.triggers.is_empty());
    }

    #[test]
    fn a_rule_past_its_lifetime_stays_quiet() {
        let rule =
            Rule::above("deep", "queue_depth", Stat::Value, 10.0).lifetime(Duration::from_secs(30));
        let mut e = Engine::new(vec![rule], Limits::GLOBAL);
        let s = e.step(S * 31, gauge(50.0));
        assert_eq!(s.suppressed, [("deep".to_owned(), Suppressed::Lifetime)]);
        assert!(e.degraded(), "still reported as breaching");
    }

    #[test]
    fn a_statistic_that_does_not_fit_is_reported_once() {
        let rule = Rule::above("bad", "queue_depth", Stat::Quantile(0.99), 10.0);
        let mut e = Engine::new(vec![rule], Limits::GLOBAL);
        let first = e.step(Duration::ZERO, gauge(50.0));
        assert_eq!(
            first.errors,
            ["rule `bad` (queue_depth): p99 does not apply to a gauge"]
        );
        assert!(e.step(S, gauge(50.0)).errors.is_empty());
        assert!(!e.degraded());
    }

    #[test]
    fn a_metric_the_sample_does_not_have_is_reported_once_with_near_names() {
        let mut e = Engine::new(
            vec![Rule::above("q", "queue_dept", Stat::Value, 10.0)],
            Limits::GLOBAL,
        );
        let first = e.step(Duration::from_secs(5), gauge(50.0));
        assert_eq!(first.unknown_metrics.len(), 1, "{first:?}");
        assert!(
            first.unknown_metrics[0].contains("`queue_dept`")
                && first.unknown_metrics[0].contains("rule `q`")
                && first.unknown_metrics[0].contains("queue_depth"),
            "{first:?}"
        );
        assert!(first.triggers.is_empty());
        let second = e.step(Duration::from_secs(10), gauge(50.0));
        assert!(second.unknown_metrics.is_empty(), "{second:?}");
    }
}
