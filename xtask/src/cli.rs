//! The verbs of `cargo xtask` and their options, declared (clap's derive): `--help` lists
//! them, and an unknown verb or option is refused with the usage.

use clap::{Parser, Subcommand, ValueEnum};

/// The project's automation, in Rust so it runs wherever cargo does.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub(crate) struct Xtask {
    /// What to do.
    #[command(subcommand)]
    pub(crate) verb: Verb,
}

/// One verb of `cargo xtask`.
#[derive(Debug, Subcommand)]
pub(crate) enum Verb {
    /// Everything CI checks: fmt, clippy, tests, docs, the facade both ways, the recorder's
    /// loom models, the axum example, every feature.
    Ci,
    /// Runs the benches, writes target/xtask/bench/summary.json and compares it with the
    /// previous run.
    Bench {
        /// Runs only the benches whose id contains NAME.
        #[arg(long, value_name = "NAME")]
        filter: Option<String>,
    },
    /// The README's first command: a service with fdr wired in, a fault, its diagnosis.
    Demo {
        /// Passed to the demo program.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// examples/axum-service under load, its fault, the incident, the diagnosis.
    AxumService,
    /// The example built outside the workspace from the docs' dependency list.
    FreshIntegration,
    /// The facade with each feature alone, the builds outside the workspace (the docs'
    /// example, prometheus with its default features) and the compile-out proof.
    Facade,
    /// Fuzzes the trace decoder or the analyzer under libFuzzer (installs cargo-fuzz).
    Fuzz {
        /// The fuzz target.
        #[arg(long, value_enum, default_value_t = FuzzTarget::Decode)]
        target: FuzzTarget,
        /// How long to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// libFuzzer jobs run at once.
        #[arg(long, default_value_t = 1)]
        jobs: u32,
    },
    /// The repository checks (they also run as tests of xtask).
    Tidy,
}

/// A fuzz target under `fuzz/fuzz_targets/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FuzzTarget {
    /// The trace decoder.
    Decode,
    /// The analyzer: profile, diagnosis, views, report, diff, summary, cat, both exports.
    Analyze,
}

impl FuzzTarget {
    /// Its file name under `fuzz/fuzz_targets/`, without `.rs`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FuzzTarget::Decode => "decode",
            FuzzTarget::Analyze => "analyze",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Verb, clap::Error> {
        Xtask::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
            .map(|x| x.verb)
    }

    #[test]
    fn verbs_and_options_parse_and_strangers_are_refused() {
        use clap::CommandFactory;
        Xtask::command().debug_assert();
        assert!(matches!(parse(&["ci"]), Ok(Verb::Ci)));
        assert!(matches!(
            parse(&["bench", "--filter", "record"]),
            Ok(Verb::Bench { filter: Some(f) }) if f == "record"
        ));
        assert!(matches!(
            parse(&["fuzz", "--target", "analyze", "--seconds", "5"]),
            Ok(Verb::Fuzz {
                target: FuzzTarget::Analyze,
                seconds: 5,
                jobs: 1
            })
        ));
        assert!(matches!(
            parse(&["demo", "--quick", "x"]),
            Ok(Verb::Demo { args }) if args == ["--quick", "x"]
        ));
        assert!(parse(&["fuzz", "--target", "nope"]).is_err());
        assert!(parse(&["fuzz", "--seconds", "soon"]).is_err());
        assert!(parse(&["bench", "--fliter", "x"]).is_err());
        assert!(parse(&["deploy"]).is_err());
    }
}
