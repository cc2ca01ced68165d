//! Each scenario's trace: `fdr diagnose` ranks the injected cause first, and the healthy
//! service raises nothing above info. Golden outputs: `UPDATE_EXPECT=1 cargo test`.

use expect_test::expect_file;
use fdr_analyzer::diagnose::{Severity, diagnose};
use fdr_analyzer::{ProfileOptions, profile_slice};
use fdr_test_support::scenarios::{SCENARIOS, scenario};

#[test]
fn diagnose_ranks_the_injected_cause_first() {
    for (name, cause) in SCENARIOS {
        let trace = scenario(name).unwrap();
        let (p, out) = profile_slice(&trace, ProfileOptions::default()).unwrap();
        assert!(out.error.is_none(), "{name}: {:?}", out.error);
        let d = diagnose(&p);
        let text = d.to_text();
        match cause {
            Some(rule) => {
                let top = d.top().unwrap();
                assert_eq!(top.rule, *rule, "{name}: ranked\n{text}");
                assert!(top.severity >= Severity::Warning, "{name}: {text}");
            }
            None => {
                for f in d.findings() {
                    assert_eq!(f.severity, Severity::Info, "{name}: {text}");
                }
            }
        }
        expect_file![format!("../golden/{name}.diagnose.txt")].assert_eq(&text);
    }
}
