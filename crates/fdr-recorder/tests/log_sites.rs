//! `log!` call sites end to end: a literal message keeps its encoded operands at the call
//! site, one with braces (escaped, or an argument captured from the scope) is formatted,
//! and a site whose names were interned past two varint bytes takes `log`'s path. Every form
//! decodes to the text the user wrote. (Own test binary: the names' ids, which choose the
//! path, depend on what the process interned before.)

mod common;

use std::time::Duration;

use common::{Ev, decode};

/// Runs the four forms three times on each of four threads racing to the sites' first use,
/// and returns each thread's decoded logs.
fn log_on_threads(dump_name: &str, late: bool) -> Vec<Vec<Ev>> {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("{dump_name}-{t}"))
                .spawn(move || {
                    for n in 0..3 {
                        if late {
                            fdr_recorder::log!("log-site-late", "a message interned late");
                        } else {
                            fdr_recorder::log!("log-site", "plain text");
                        }
                        fdr_recorder::log!("log-site", "braces {{kept}}");
                        fdr_recorder::log!("log-site", "n={n}",);
                        // The next delta no longer fits a byte.
                        std::thread::sleep(Duration::from_micros(200));
                        fdr_recorder::log!("log-site", "after a pause");
                    }
                })
                .unwrap()
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump).unwrap();
    let d = decode(&dump);
    (0..4)
        .map(|t| {
            d.thread_named(&format!("{dump_name}-{t}"))
                .expect("the logging thread")
                .iter()
                .map(|e| e.1.clone())
                .filter(|e| matches!(e, Ev::Log(..)))
                .collect()
        })
        .collect()
}

fn want(first: (&str, &str)) -> Vec<Ev> {
    (0..3)
        .flat_map(|n| {
            [
                first,
                ("log-site", "braces {kept}"),
                ("log-site", &format!("n={n}")),
                ("log-site", "after a pause"),
            ]
            .map(|(c, m)| Ev::Log(c.into(), m.into()))
        })
        .collect()
}

#[test]
fn log_macro_sites_decode_to_their_text() {
    common::start_flight();
    // Few names interned yet: the sites keep their operands (two to four bytes).
    for (t, got) in log_on_threads("early", false).into_iter().enumerate() {
        assert_eq!(got, want(("log-site", "plain text")), "thread {t}");
    }
    // Past 9,000 names, a new site's ids take three varint bytes: it keeps none.
    for k in 0..9000 {
        fdr_recorder::intern(Box::leak(format!("filler-{k}").into_boxed_str()));
    }
    assert!(fdr_recorder::intern("log-site-late").0 >= 9000);
    for (t, got) in log_on_threads("late", true).into_iter().enumerate() {
        assert_eq!(
            got,
            want(("log-site-late", "a message interned late")),
            "thread {t}"
        );
    }
}
