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
        if lifts_unsafe(&text) {
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

/// Whether Rust source lifts the `unsafe_code` lint: names it anywhere outside comments but
/// in `forbid(unsafe_code)` or `deny(unsafe_code)` (an `allow`, an `expect`, a `cfg_attr`,
/// on one line or several).
fn lifts_unsafe(text: &str) -> bool {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    code.replace("forbid(unsafe_code)", "")
        .replace("deny(unsafe_code)", "")
        .contains("unsafe_code")
}

#[test]
fn tidy_the_unsafe_lift_check_finds_every_spelling() {
    for lifted in [
        "#![allow(unsafe_code)]\n",
        "#![allow(\n    unsafe_code,\n    reason = \"x\"\n)]\n",
        "#[allow(\n        unsafe_code, reason = \"x\")]\n",
        "#[cfg_attr(unix, allow(unsafe_code))]\n",
        "#[expect(unsafe_code)]\n",
        "#[allow(dead_code, unsafe_code)]\n",
    ] {
        assert!(lifts_unsafe(lifted), "{lifted:?}");
    }
    for kept in [
        "#![forbid(unsafe_code)]\n",
        "#![deny(unsafe_code)]\n",
        "// allow(unsafe_code) in a comment\n",
        "fn f() {}\n",
    ] {
        assert!(!lifts_unsafe(kept), "{kept:?}");
    }
}

/// Every workspace member inherits the workspace's lints, so `unsafe_code = "deny"` holds in
/// the recorder's modules that do not lift it (the other crates also `forbid` it at their
/// root), and `missing_docs` everywhere.
#[test]
fn tidy_every_member_inherits_the_workspace_lints() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let rust_lints = manifest
        .split("[workspace.lints.rust]")
        .nth(1)
        .expect("[workspace.lints.rust]");
    let rust_lints = rust_lints.split("\n[").next().unwrap_or(rust_lints);
    assert!(
        rust_lints
            .lines()
            .any(|l| l.trim() == "unsafe_code = \"deny\""),
        "[workspace.lints.rust] must deny unsafe_code"
    );
    let mut members = Vec::new();
    for dir in ["crates", "examples"] {
        for e in fs::read_dir(root().join(dir)).unwrap().flatten() {
            members.push(e.path().join("Cargo.toml"));
        }
    }
    for dir in ["xtask", "benches", "demo", "scenarios"] {
        members.push(root().join(dir).join("Cargo.toml"));
    }
    for m in members {
        let text = fs::read_to_string(&m).unwrap_or_else(|e| panic!("{}: {e}", m.display()));
        let inherits = text
            .split("\n[lints]\n")
            .nth(1)
            .is_some_and(|t| t.lines().next().map(str::trim) == Some("workspace = true"));
        assert!(
            inherits,
            "{} must say [lints] workspace = true",
            m.display()
        );
    }
}

/// The loom models drive the writer the hot path writes with: every `ChunkWriter` and
/// `Room` method `hot.rs` calls is called in `src/tests/loom_chunk.rs` too.
#[test]
fn tidy_loom_drives_the_hot_paths_writer() {
    let read = |p: &str| fs::read_to_string(root().join(p)).unwrap();
    let chunk = read("crates/fdr-recorder/src/chunk.rs");
    let hot = read("crates/fdr-recorder/src/hot.rs");
    let loom = read("crates/fdr-recorder/src/tests/loom_chunk.rs");
    let mut methods = Vec::new();
    for block in ["\nimpl ChunkWriter {", "\nimpl Room<'_> {"] {
        let body = chunk
            .split(block)
            .nth(1)
            .unwrap_or_else(|| panic!("chunk.rs has no `{}`", block.trim()));
        let body = body.split("\n}\n").next().unwrap_or(body);
        methods.extend(
            body.split("pub(crate) fn ")
                .skip(1)
                .filter_map(|rest| rest.split(['(', '<']).next())
                .map(str::to_owned),
        );
    }
    assert!(
        methods.iter().any(|m| m == "fast_room"),
        "found {methods:?}"
    );
    let called = |text: &str, m: &str| text.contains(&format!(".{m}("));
    let used: Vec<&String> = methods.iter().filter(|m| called(&hot, m)).collect();
    assert!(!used.is_empty(), "hot.rs calls none of {methods:?}");
    let missing: Vec<&&String> = used.iter().filter(|m| !called(&loom, m)).collect();
    assert!(
        missing.is_empty(),
        "hot.rs writes through {missing:?}, which no loom model of loom_chunk.rs calls"
    );
}

/// The API's hygiene: macro plumbing is `#[doc(hidden)]` in `__macro_support`, sample traces
/// are behind `fdr-format`'s `testing` feature, `fdr-admin` turns nothing on by default, and
/// `Traced` projects its pin with pin-project-lite (a projection by hand needs `unsafe`,
/// which `task.rs` may not lift).
#[test]
fn tidy_the_api_exposes_no_plumbing() {
    let read = |p: &str| fs::read_to_string(root().join(p)).unwrap();
    let lib = read("crates/fdr-recorder/src/lib.rs");
    let support = lib
        .find("pub mod __macro_support")
        .expect("fdr-recorder has __macro_support");
    assert!(
        lib[..support]
            .rsplit("\n\n")
            .next()
            .is_some_and(|attrs| attrs.contains("#[doc(hidden)]")),
        "__macro_support must be #[doc(hidden)]"
    );
    for item in ["StaticName", "region_static"] {
        let exported = lib
            .lines()
            .filter(|l| l.trim_start().starts_with("pub use") && l.contains(item))
            .count();
        assert_eq!(
            exported, 1,
            "`{item}` is re-exported only from __macro_support"
        );
    }
    let format = read("crates/fdr-format/src/lib.rs");
    assert!(
        format.contains("#[cfg(any(test, feature = \"testing\"))]\npub mod testing;"),
        "fdr_format::testing must be behind the `testing` feature"
    );
    let admin = read("crates/fdr-admin/Cargo.toml");
    let features = admin
        .split("[features]")
        .nth(1)
        .expect("fdr-admin [features]");
    assert!(
        features.lines().any(|l| l.trim() == "default = []"),
        "fdr-admin's default features must be empty"
    );
    let task = read("crates/fdr-recorder/src/task.rs");
    let traced = task
        .find("pub struct Traced<")
        .expect("task.rs defines Traced");
    assert!(
        task[..traced]
            .rfind("pin_project_lite::pin_project! {")
            .is_some_and(|at| !task[at..traced].contains("\n}\n")),
        "Traced must be declared inside pin_project_lite::pin_project!"
    );
}

/// Every public error enum of the libraries (a `pub enum` named `...Error` or `...Problem`)
/// is `#[non_exhaustive]`, so a new cause is not a breaking change.
#[test]
fn tidy_public_error_enums_are_non_exhaustive() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    let mut open = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
    {
        let text = fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(name) = l.trim_start().strip_prefix("pub enum ") else {
                continue;
            };
            let name = name.split([' ', '<', '{']).next().unwrap_or("");
            if !(name.ends_with("Error") || name.ends_with("Problem")) {
                continue;
            }
            // The attributes and doc lines directly above the item.
            let marked = lines[..i]
                .iter()
                .rev()
                .take_while(|a| {
                    let a = a.trim_start();
                    a.starts_with("#[")
                        || a.starts_with("///")
                        || a.starts_with(')')
                        || a.starts_with('"')
                        || a.starts_with("reason")
                })
                .any(|a| a.trim() == "#[non_exhaustive]");
            if !marked {
                open.push(format!("{}:{} {name}", f.display(), i + 1));
            }
        }
    }
    assert!(
        open.is_empty(),
        "public error enums without #[non_exhaustive]: {open:?}"
    );
}

/// The facade names what it re-exports: no glob over another crate, so an item made `pub` by
/// accident in a crate below does not become the facade's API.
#[test]
fn tidy_the_facade_reexports_by_name() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/fdr/src"), &mut files);
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim_start();
            if l.starts_with("pub use fdr_") && l.contains("::*") {
                panic!(
                    "{}:{}: a glob re-export of a crate: {l}",
                    f.display(),
                    i + 1
                );
            }
        }
    }
}

/// xtask builds and runs the project; it never links the analyzer, so changing the analyzer
/// does not rebuild the tool that checks it.
#[test]
fn tidy_xtask_does_not_depend_on_the_analyzer() {
    // xtask's own manifest and that of the one workspace crate it depends on besides the
    // format (whose invariant forbids it any fdr dependency).
    for m in ["xtask/Cargo.toml", "crates/fdr-test-support/Cargo.toml"] {
        let manifest = fs::read_to_string(root().join(m)).unwrap();
        assert!(!manifest.contains("fdr-analyzer"), "{m} names fdr-analyzer");
    }
}

/// No package of the lock file needs a Rust newer than the workspace's `rust-version`
/// (what each declares as its own), so the stated minimum is one the dependencies accept.
/// Beside clippy's `incompatible_msrv` (std APIs) and the let-chains check, this is as far as
/// a machine with one toolchain can check the minimum.
#[test]
fn tidy_no_dependency_needs_a_newer_rust() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .expect("[workspace.package] rust-version")
        .trim_matches('"')
        .to_owned();
    let version = |s: &str| -> Vec<u32> {
        let mut v: Vec<u32> = s.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        v.resize(3, 0);
        v
    };
    // The host's packages only: those the builds before this test fetched, so `--offline`
    // holds on a fresh machine (other platforms' crates are never downloaded there).
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().expect("packages");
    assert!(packages.len() > 50, "only {} packages", packages.len());
    let newer: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(&declared)).then(|| {
                format!(
                    "{} {} needs {needs}",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?")
                )
            })
        })
        .collect();
    assert!(
        newer.is_empty(),
        "rust-version is {declared}, but: {newer:?}"
    );
}

/// `cargo xtask demo` builds `fdr-demo` and `fdr-cli --no-default-features`: the heavy
/// optional engines (DataFusion, Arrow, Parquet, object stores and their HTTP client) stay
/// out of that build, so the README's first command stays quick.
#[test]
fn tidy_the_demo_builds_no_query_engine() {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["-p", "fdr-demo", "-p", "fdr-cli", "--no-default-features"])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("fdr-cli "), "{tree}");
    let heavy: Vec<&str> = tree
        .lines()
        .filter(|l| {
            [
                "datafusion",
                "arrow",
                "parquet ",
                "object_store ",
                "reqwest ",
                "fdr-query ",
                "fdr-fleet ",
            ]
            .iter()
            .any(|h| l.starts_with(h))
        })
        .collect();
    assert!(heavy.is_empty(), "the demo's build holds {heavy:?}");
}
