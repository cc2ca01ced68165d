//! The common questions across many dumps, as SQL over the tables of `docs/TABLES.md`.
//!
//! Each function returns the query's text, written in the SQL DuckDB shares (over views
//! such as `CREATE VIEW blocks AS SELECT * FROM read_parquet('DIR/blocks/*.parquet')`),
//! except [`incidents_per_rule`], whose date conversion is DataFusion's. Rows come in a
//! total order (ties broken by every key), so two engines can be compared row by row.

/// The blocking sites that cost most across every dump: per site and reason, the blocks,
/// the dumps and hosts they were seen in, their total and longest time; the `limit` costliest.
pub fn top_blocking(limit: u64) -> String {
    format!(
        "SELECT site, reason, count(*) AS blocks, count(DISTINCT host || '/' || dump_id) AS dumps, \
         count(DISTINCT host) AS hosts, sum(duration_ns) AS total_ns, max(duration_ns) AS max_ns \
         FROM blocks GROUP BY site, reason \
         ORDER BY total_ns DESC, site, reason LIMIT {limit}"
    )
}

/// Per host and task name: the polls and their p99 time, the awaits (those woken) and
/// their p99 wait. Tasks with no name are `-`. The p99 is `percentile_cont` (interpolated
/// between the two nearest values).
pub fn p99_by_task() -> String {
    "WITH p AS (SELECT host, COALESCE(task_name, '-') AS task_name, count(*) AS polls, \
         percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) AS p99_poll_ns \
         FROM polls GROUP BY host, COALESCE(task_name, '-')), \
     a AS (SELECT host, COALESCE(task_name, '-') AS task_name, count(*) AS awaits, \
         percentile_cont(0.99) WITHIN GROUP (ORDER BY wait_ns) AS p99_await_ns \
         FROM awaits WHERE wait_ns IS NOT NULL GROUP BY host, COALESCE(task_name, '-')) \
     SELECT COALESCE(p.host, a.host) AS host, COALESCE(p.task_name, a.task_name) AS task_name, \
         COALESCE(p.polls, 0) AS polls, p.p99_poll_ns, COALESCE(a.awaits, 0) AS awaits, a.p99_await_ns \
     FROM p FULL OUTER JOIN a ON p.host = a.host AND p.task_name = a.task_name \
     ORDER BY host, p99_poll_ns DESC NULLS LAST, task_name"
        .to_owned()
}

/// Per day (UTC, of the dump's wall-clock origin) and diagnosis rule: the dumps with a
/// finding of that rule, and those where it is the top finding. A dump without a clock
/// record counts under its recording start; with neither, under a null day.
pub fn incidents_per_rule() -> String {
    "SELECT CAST(to_timestamp_nanos(COALESCE(d.wall_origin_unix_ns, d.recording_start_unix_ns)) AS DATE) AS day, \
         f.rule, count(DISTINCT f.host || '/' || f.dump_id) AS incidents, \
         sum(CASE WHEN f.rank = 1 THEN 1 ELSE 0 END) AS top \
     FROM findings f JOIN dumps d ON f.host = d.host AND f.dump_id = d.dump_id \
     GROUP BY 1, f.rule ORDER BY day, incidents DESC, f.rule"
        .to_owned()
}

/// Two releases (`dumps.service_version`) compared per task name: polls and p99 poll time
/// in each, and the change from `before` to `after` (positive: slower); tasks seen in only
/// one release have a null change. The costliest changes first.
pub fn release_diff(before: &str, after: &str) -> String {
    let one = |release: &str| {
        format!(
            "SELECT COALESCE(p.task_name, '-') AS task_name, count(*) AS polls, \
             percentile_cont(0.99) WITHIN GROUP (ORDER BY p.duration_ns) AS p99_poll_ns \
             FROM polls p JOIN dumps d ON p.host = d.host AND p.dump_id = d.dump_id \
             WHERE d.service_version = {} GROUP BY COALESCE(p.task_name, '-')",
            literal(release)
        )
    };
    format!(
        "WITH b AS ({}), a AS ({}) \
         SELECT COALESCE(b.task_name, a.task_name) AS task_name, \
             COALESCE(b.polls, 0) AS polls_before, COALESCE(a.polls, 0) AS polls_after, \
             b.p99_poll_ns AS p99_poll_ns_before, a.p99_poll_ns AS p99_poll_ns_after, \
             a.p99_poll_ns - b.p99_poll_ns AS p99_change_ns \
         FROM b FULL OUTER JOIN a ON b.task_name = a.task_name \
         ORDER BY p99_change_ns DESC NULLS LAST, task_name",
        one(before),
        one(after)
    )
}

/// `s` as an SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_name_is_a_literal_not_sql() {
        let q = release_diff("42", "o'43");
        assert!(q.contains("d.service_version = '42'"));
        assert!(q.contains("d.service_version = 'o''43'"));
    }
}
