//! Repository checks that run as ordinary tests, so `cargo test --workspace` predicts CI.

use std::fs;
use std::path::{Path, PathBuf};

use crate::root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn tidy_docs_present() {
    for doc in [
        "README.md",
        "docs/ARCHITECTURE.md",
        "docs/FORMAT.md",
        "docs/RUNBOOK.md",
        "docs/OPERATIONS.md",
    ] {
        let p = root().join(doc);
        let text = fs::read_to_string(&p).unwrap_or_default();
        assert!(text.len() > 200, "{doc} is missing or empty");
    }
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo xtask demo") && readme.contains("cargo xtask ci"));
}

/// Where a Rust file lacks its module doc: the first line that is not blank, when it is not
/// a `//!` line.
fn missing_module_doc(text: &str) -> Option<&str> {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Some("(nothing: the file is empty)");
    };
    (!first.starts_with("//!")).then_some(first)
}

#[test]
fn tidy_the_module_doc_check_finds_a_file_without_one() {
    assert_eq!(missing_module_doc("//! What it is.\nfn f() {}\n"), None);
    assert_eq!(missing_module_doc("\n  //! Indented.\n"), None);
    assert_eq!(
        missing_module_doc("// A comment.\n//! Late.\n"),
        Some("// A comment.")
    );
    assert_eq!(missing_module_doc("use std::fs;\n"), Some("use std::fs;"));
    assert!(missing_module_doc(" \n").is_some());
    assert_eq!(
        missing_module_doc("#![allow(dead_code)]\n//! Late.\n"),
        Some("#![allow(dead_code)]")
    );
}

/// Every Rust file of the repository (crates, tests, benches, examples, xtask, fuzz
/// targets) opens with a `//!` doc saying what it is.
#[test]
fn tidy_every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(files.len() > 100, "only {} Rust files found", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let text = fs::read_to_string(p).ok()?;
            let first = missing_module_doc(&text)?;
            Some(format!(
                "{}: starts with `{first}`",
                p.strip_prefix(root()).unwrap_or(p).display()
            ))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "Rust files without a `//!` doc:\n{}",
        missing.join("\n")
    );
}

#[test]
fn tidy_only_the_recorder_lifts_unsafe() {
    let Ok(crates) = fs::read_dir(root().join("crates")) else {
        return;
    };
    for c in crates.flatten() {
        let name = c.file_name().to_string_lossy().into_owned();
        let lib = c.path().join("src/lib.rs");
        let main = c.path().join("src/main.rs");
        let root_file = if lib.exists() { lib } else { main };
        let text = fs::read_to_string(&root_file).unwrap_or_default();
        if name == "fdr-recorder" {
            continue;
        }
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "{} must say #![forbid(unsafe_code)]",
            root_file.display()
        );
    }
}

#[test]
fn tidy_every_unsafe_block_has_a_safety_comment() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("unsafe {") || code.trim_end().ends_with("unsafe") {
                let window = &lines[i.saturating_sub(8)..=i];
                assert!(
                    window.iter().any(|l| l.contains("SAFETY:")),
                    "{}:{}: unsafe block without a // SAFETY: comment",
                    f.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn tidy_no_stray_debugging() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    let needle = ["dbg", "!("].concat();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains(&needle),
            "{} contains a stray debugging macro",
            f.display()
        );
    }
}

/// The OpenTelemetry bridge is a leaf: only the facade depends on `fdr-otel`, and
/// OpenTelemetry crates are named with a version only in the root manifest.
#[test]
fn tidy_otel_is_a_leaf_pinned_once() {
    let mut manifests = Vec::new();
    for dir in ["crates", "."] {
        for e in fs::read_dir(root().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let m = e.path().join("Cargo.toml");
            if m.exists() && m != root().join("./Cargo.toml") {
                manifests.push(m);
            }
        }
    }
    assert!(manifests.len() > 5, "found only {manifests:?}");
    for m in manifests {
        let text = fs::read_to_string(&m).unwrap();
        let facade = m.ends_with("crates/fdr/Cargo.toml");
        for (i, line) in text.lines().enumerate() {
            let key = line.trim_start();
            let at = || format!("{}:{}", m.display(), i + 1);
            if key.starts_with("fdr-otel") || key.contains("dependencies.fdr-otel") {
                assert!(facade, "{}: only the facade may depend on fdr-otel", at());
            }
            if key.starts_with("opentelemetry") || key.contains("dependencies.opentelemetry") {
                assert!(
                    key.contains("workspace = true"),
                    "{}: OpenTelemetry versions are pinned in the root [workspace.dependencies] only",
                    at()
                );
            }
        }
    }
}

/// examples/axum-service depends on OpenTelemetry as an application does, by version, not
/// through the workspace: that version must be the one fdr is built with, or none of its
/// spans would carry `fdr.task_id`.
#[test]
fn tidy_the_axum_example_uses_fdrs_opentelemetry() {
    let version = |text: &str, key: &str| -> Option<String> {
        let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
        let v = line
            .split("version = \"")
            .nth(1)
            .or_else(|| line.split("= \"").nth(1))?;
        Some(v.split('"').next()?.to_string())
    };
    let workspace = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let example = fs::read_to_string(root().join("examples/axum-service/Cargo.toml")).unwrap();
    for key in ["opentelemetry = ", "opentelemetry_sdk = "] {
        let pinned = version(&workspace, key).unwrap_or_else(|| panic!("no `{key}` in Cargo.toml"));
        let used = version(&example, key)
            .unwrap_or_else(|| panic!("no `{key}` in examples/axum-service/Cargo.toml"));
        assert_eq!(
            used, pinned,
            "examples/axum-service/Cargo.toml: `{key}\"{used}\"`, but fdr is built with {pinned}"
        );
    }
}

/// Every constant that docs/FORMAT.md states as `NAME = value` must equal the code's.
#[test]
fn tidy_format_spec_constants_match_code() {
    use fdr_format::wire::*;
    let spec = fs::read_to_string(root().join("docs/FORMAT.md")).expect("docs/FORMAT.md");
    let code: &[(&str, u64)] = &[
        ("VERSION_MAJOR", VERSION_MAJOR as u64),
        ("VERSION_MINOR", VERSION_MINOR as u64),
        ("FILE_HEADER_FIXED_LEN", FILE_HEADER_FIXED_LEN as u64),
        ("MAX_PROCESS_INFO_LEN", MAX_PROCESS_INFO_LEN as u64),
        ("BATCH_HEADER_LEN", BATCH_HEADER_LEN as u64),
        ("BATCH_HEADER_CHECKED_LEN", BATCH_HEADER_CHECKED_LEN as u64),
        ("MAX_BATCH_PAYLOAD", MAX_BATCH_PAYLOAD as u64),
        ("TAG_EVENTS", TAG_EVENTS as u64),
        ("TAG_TABLE", TAG_TABLE as u64),
        ("TAG_END", TAG_END as u64),
        ("TABLE_FLAG_FULL", TABLE_FLAG_FULL as u64),
        ("CODE_REGION_BEGIN", CODE_REGION_BEGIN as u64),
        ("CODE_REGION_END", CODE_REGION_END as u64),
        ("CODE_LOG", CODE_LOG as u64),
        ("CODE_EXT", CODE_EXT as u64),
        ("CODE_BITS", CODE_BITS as u64),
        ("EXT_THREAD_START", EXT_THREAD_START),
        ("EXT_THREAD_END", EXT_THREAD_END),
        ("EXT_TASK_CREATE", EXT_TASK_CREATE),
        ("EXT_POLL_START", EXT_POLL_START),
        ("EXT_POLL_END", EXT_POLL_END),
        ("EXT_WAKE", EXT_WAKE),
        ("EXT_TASK_DROP", EXT_TASK_DROP),
        ("EXT_USER_TASK_BEGIN", EXT_USER_TASK_BEGIN),
        ("EXT_USER_TASK_END", EXT_USER_TASK_END),
        ("EXT_BLOCK_BEGIN", EXT_BLOCK_BEGIN),
        ("EXT_BLOCK_END", EXT_BLOCK_END),
        ("EXT_METRIC", EXT_METRIC),
        ("EXT_OTEL_LINK", EXT_OTEL_LINK),
        ("EXT_LOSS", EXT_LOSS),
        ("EXT_PARK", EXT_PARK),
        ("EXT_UNPARK", EXT_UNPARK),
        ("EXT_FIRST_SIZED", EXT_FIRST_SIZED),
        ("EXT_OS_SAMPLE", EXT_OS_SAMPLE),
        ("EXT_STACK", EXT_STACK),
        ("EXT_ASYNC_REGION_BEGIN", EXT_ASYNC_REGION_BEGIN),
        ("EXT_ASYNC_REGION_END", EXT_ASYNC_REGION_END),
        ("OS_HAS_CPU", OS_HAS_CPU),
        ("OS_HAS_RUNQ", OS_HAS_RUNQ),
        ("OS_HAS_SLICES", OS_HAS_SLICES),
        ("OS_HAS_STATE", OS_HAS_STATE),
        ("STACK_TRUNCATED", STACK_TRUNCATED),
        ("STACK_HAS_AGE", STACK_HAS_AGE),
        ("MAX_STACK_FRAMES", MAX_STACK_FRAMES as u64),
        ("REC_STRING", REC_STRING as u64),
        ("REC_SITE", REC_SITE as u64),
        ("REC_THREAD", REC_THREAD as u64),
        ("REC_CLOCK", REC_CLOCK as u64),
        ("REC_FIRST_SIZED", REC_FIRST_SIZED as u64),
        ("REC_MODULE", REC_MODULE as u64),
        ("MAX_BUILD_ID_LEN", MAX_BUILD_ID_LEN as u64),
        ("MAX_STRING_LEN", MAX_STRING_LEN as u64),
    ];
    let mut stated = std::collections::HashMap::new();
    for line in spec.lines() {
        // Lines of the form `| `NAME` | value | ...` in the constants table.
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 3 && cells[1].starts_with('`') && cells[1].ends_with('`') {
            let name = cells[1].trim_matches('`');
            let v = cells[2].trim_matches('`').replace('_', "");
            let parsed = if let Some(hex) = v.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).ok()
            } else {
                v.parse::<u64>().ok()
            };
            if let Some(p) = parsed {
                stated.insert(name.to_string(), p);
            }
        }
    }
    for (name, value) in code {
        let s = stated
            .get(*name)
            .unwrap_or_else(|| panic!("docs/FORMAT.md does not state {name}"));
        assert_eq!(
            s, value,
            "docs/FORMAT.md says {name} = {s}, the code says {value}"
        );
    }
    let magic: String = MAGIC
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        spec.contains(&magic),
        "docs/FORMAT.md must give the magic bytes as `{magic}`"
    );
}

/// The declared `rust-version` covers the language features the code uses: let-chains
/// (`if let .. && let ..`) need 1.88. APIs newer than the declared version are caught by
/// clippy's `incompatible_msrv` lint, which `cargo xtask ci` runs with `-D warnings`.
#[test]
fn tidy_rust_version_covers_let_chains() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .expect("[workspace.package] rust-version")
        .trim_matches('"');
    let minor: u32 = declared
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("rust-version {declared} is not 1.MINOR"));
    let mut files = Vec::new();
    for dir in [
        "crates",
        "demo",
        "xtask",
        "benches",
        "scenarios",
        "examples",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    let chains: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = fs::read_to_string(f).unwrap_or_default();
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains("&& let "))
                .map(|(i, _)| format!("{}:{}", f.display(), i + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        chains.is_empty() || minor >= 88,
        "rust-version {declared} is below 1.88, which let-chains need: {chains:?}"
    );
}

/// Lines of Rust source that declare a `pub` item (not `pub(crate)` or narrower) whose
/// line names a raw pointer type: `pub struct P(pub *const T)`, `pub fn f() -> *mut u8`.
fn pub_raw_pointer_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            let public = code
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '('))
                .any(|w| w == "pub");
            public && (code.contains("*const ") || code.contains("*mut "))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn tidy_the_pub_raw_pointer_check_finds_them() {
    let found = pub_raw_pointer_lines(
        "pub struct ChunkPtr(pub *const Chunk);\n\
         pub(crate) struct P(*const u8);\n\
         pub fn base(&self) -> *mut u8 {\n\
         // pub *const in a comment\n\
         fn private(p: *const u8) {}\n",
    );
    assert_eq!(found, [1, 3]);
}

/// The recorder's API hands out no raw pointer: no `pub` item of `fdr-recorder` names one
/// (internal ones are `pub(crate)`), and the modules that hold them are private.
#[test]
fn tidy_no_pub_raw_pointer_in_the_recorder() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/fdr-recorder/src"), &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let lines = pub_raw_pointer_lines(&text);
        assert!(
            lines.is_empty(),
            "{}:{lines:?}: a `pub` item names a raw pointer; make it pub(crate) or wrap it",
            f.display()
        );
    }
    let lib = fs::read_to_string(root().join("crates/fdr-recorder/src/lib.rs")).unwrap();
    for module in [
        "chunk",
        "tls",
        "clock",
        "metric_cells",
        "local",
        "hot",
        "sync",
    ] {
        assert!(
            !lib.contains(&format!("pub mod {module};")),
            "fdr-recorder's `{module}` holds internals and must stay private"
        );
    }
}

/// `unsafe` is lifted only where it is confined: in the recorder's chunk, clock and
/// thread-local modules, the OS view's signal module, the loom-only unsynchronized read of
/// `sync.rs`, and the loom model that drives the signal module's raw copy.
#[test]
fn tidy_unsafe_is_confined_to_its_modules() {
    let allowed = [
        "crates/fdr-recorder/src/chunk.rs",
        "crates/fdr-recorder/src/clock.rs",
        "crates/fdr-recorder/src/tls.rs",
        "crates/fdr-recorder/src/os/signal.rs",
        "crates/fdr-recorder/src/sync.rs",
        "crates/fdr-recorder/src/tests/loom_signal.rs",
    ];
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let lifts = text.lines().any(|l| {
            let l = l.trim_start();
            (l.starts_with("#![allow(") || l.starts_with("#[allow(")) && l.contains("unsafe_code")
        }) || text.contains("allow(\n    unsafe_code");
        if lifts {
            assert!(
                allowed.contains(&rel.as_str()),
                "{rel} lifts `unsafe_code`; unsafe belongs in {allowed:?}"
            );
        }
    }
    let sync = fs::read_to_string(root().join("crates/fdr-recorder/src/sync.rs")).unwrap();
    let unsafe_at = sync.find("unsafe {").expect("sync.rs's loom read");
    assert!(
        sync[..unsafe_at].rfind("#[cfg(loom)]") > sync[..unsafe_at].rfind("#[cfg(not(loom))]"),
        "sync.rs may use `unsafe` only in its loom build"
    );
}
