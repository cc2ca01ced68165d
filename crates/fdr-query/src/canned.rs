//! The common questions across dumps, as SQL over fdr-fleet's tables. The SQL is portable:
//! DuckDB runs it unchanged over the same files (with each table a view of
//! `read_parquet('DIR/TABLE/*.parquet')`), so its answers can be checked against another
//! engine's, and users can paste it into the engine they run at scale.
//!
//! p99 is the nearest-rank percentile, exact: the value at rank ⌈0.99·n⌉ of the `n` sorted
//! values (as `fdr tasks` ranks its p99, there from histogram buckets), written with
//! integer arithmetic only, so that every engine returns the same number; means are an
//! exact integer sum divided once in `DOUBLE`.

/// A canned question.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Canned {
    /// The blocking sites that cost most across every dump: reason, site, waits, dumps they
    /// occur in, total and longest wait.
    Blocking {
        /// The rows shown.
        limit: u64,
    },
    /// p99 poll time and p99 await time (`wait_ns`: from the `Pending` poll's end to the
    /// wake) per host and task name, slowest polls first.
    Latency {
        /// The rows shown.
        limit: u64,
    },
    /// Incidents per sentinel rule per day (UTC), from the incident ids
    /// (`YYYYMMDDTHHMMSS.mmmZ-RULE`; a panic's `...Z-panic-PID` counts as `panic`), with
    /// the hosts they came from.
    IncidentsPerDay,
    /// Two releases (`dumps.service_version`) compared per task name: polls, p99 and mean
    /// poll time in each, and the change, largest p99 rise first.
    Releases {
        /// The earlier release.
        before: String,
        /// The later release.
        after: String,
        /// The rows shown.
        limit: u64,
    },
}

/// `s` as an SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The task name, with unnamed tasks grouped as `(unnamed)`.
const TASK_NAME: &str = "coalesce(task_name, '(unnamed)')";

impl Canned {
    /// The question's SQL.
    pub fn sql(&self) -> String {
        match self {
            Canned::Blocking { limit } => format!(
                "SELECT reason, site, count(*) AS waits, count(DISTINCT dump_id) AS dumps, \
                 sum(duration_ns) AS total_ns, max(duration_ns) AS max_ns\n\
                 FROM blocks\n\
                 GROUP BY reason, site\n\
                 ORDER BY total_ns DESC, reason, site\n\
                 LIMIT {limit}"
            ),
            Canned::Latency { limit } => format!(
                "WITH pr AS ({}),\n\
                 p AS (SELECT host, task_name, max(n) AS polls, {} AS poll_p99_ns FROM pr GROUP BY host, task_name),\n\
                 ar AS ({}),\n\
                 a AS (SELECT host, task_name, max(n) AS awaits, {} AS await_p99_ns FROM ar GROUP BY host, task_name)\n\
                 SELECT coalesce(p.host, a.host) AS host, coalesce(p.task_name, a.task_name) AS task_name,\n  \
                   coalesce(p.polls, 0) AS polls, p.poll_p99_ns, coalesce(a.awaits, 0) AS awaits, a.await_p99_ns\n\
                 FROM p FULL OUTER JOIN a ON p.host = a.host AND p.task_name = a.task_name\n\
                 ORDER BY poll_p99_ns DESC NULLS LAST, host, task_name\n\
                 LIMIT {limit}",
                ranked("polls", "host", "duration_ns", "TRUE"),
                P99,
                ranked("awaits", "host", "wait_ns", "wait_ns IS NOT NULL"),
                P99,
            ),
            Canned::IncidentsPerDay => "SELECT day, rule, count(DISTINCT incident_id) AS incidents, \
                 count(DISTINCT host) AS hosts\n\
                 FROM (\n  \
                   SELECT substr(incident_id, 1, 4) || '-' || substr(incident_id, 5, 2) || '-' || substr(incident_id, 7, 2) AS day,\n    \
                   CASE WHEN substr(incident_id, 22, 6) = 'panic-' THEN 'panic' ELSE substr(incident_id, 22) END AS rule,\n    \
                   incident_id, host\n  \
                   FROM dumps\n  \
                   WHERE incident_id IS NOT NULL AND length(incident_id) > 21 AND substr(incident_id, 20, 2) = 'Z-') AS i\n\
                 GROUP BY day, rule\n\
                 ORDER BY day, rule"
                .to_owned(),
            Canned::Releases {
                before,
                after,
                limit,
            } => {
                let (b, a) = (literal(before), literal(after));
                let polls = format!(
                    "SELECT p.host, p.task_name, d.service_version AS version, p.duration_ns \
                     FROM polls p JOIN dumps d ON p.dump_id = d.dump_id AND p.host = d.host \
                     WHERE d.service_version IN ({b}, {a})"
                );
                format!(
                    "WITH r AS ({}),\n\
                     s AS (SELECT version, task_name, max(n) AS polls, {P99} AS p99_ns,\n  \
                       CAST(sum(v) AS DOUBLE) / count(*) AS mean_ns FROM r GROUP BY version, task_name),\n\
                     x AS (SELECT * FROM s WHERE version = {b}),\n\
                     y AS (SELECT * FROM s WHERE version = {a})\n\
                     SELECT coalesce(x.task_name, y.task_name) AS task_name,\n  \
                       coalesce(x.polls, 0) AS polls_before, coalesce(y.polls, 0) AS polls_after,\n  \
                       x.p99_ns AS p99_before_ns, y.p99_ns AS p99_after_ns, y.p99_ns - x.p99_ns AS p99_change_ns,\n  \
                       x.mean_ns AS mean_before_ns, y.mean_ns AS mean_after_ns\n\
                     FROM x FULL OUTER JOIN y ON x.task_name = y.task_name\n\
                     ORDER BY p99_change_ns DESC NULLS LAST, task_name\n\
                     LIMIT {limit}",
                    ranked(&format!("({polls})"), "version", "duration_ns", "TRUE"),
                )
            }
        }
    }
}

/// The p99 of `v` over each group of [`ranked`]'s rows: the value ranked ⌈0.99·n⌉, the
/// smallest rank `rn` with `rn·100 ≥ 99·n`.
const P99: &str = "max(CASE WHEN rn * 100 >= 99 * n AND (rn - 1) * 100 < 99 * n THEN v END)";

/// The rows of `from` where `filter` holds, as `key`, `task_name` (unnamed tasks as
/// `(unnamed)`), the value `v` of `column`, its rank `rn` among its group's values (by
/// `key` and task name, smallest first) and the group's size `n`.
fn ranked(from: &str, key: &str, column: &str, filter: &str) -> String {
    format!(
        "\n  SELECT {key}, {TASK_NAME} AS task_name, {column} AS v,\n    \
         row_number() OVER (PARTITION BY {key}, {TASK_NAME} ORDER BY {column}) AS rn,\n    \
         count(*) OVER (PARTITION BY {key}, {TASK_NAME}) AS n\n  \
         FROM {from} AS t WHERE {filter}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names_are_quoted_as_literals() {
        let sql = Canned::Releases {
            before: "4'1".into(),
            after: "42".into(),
            limit: 5,
        }
        .sql();
        assert!(sql.contains("IN ('4''1', '42')"), "{sql}");
        assert!(sql.ends_with("LIMIT 5"), "{sql}");
    }
}
