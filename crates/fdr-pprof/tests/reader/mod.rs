//! An independent reader of pprof profiles for tests: protobuf's Python runtime with classes
//! that `grpcio-tools` (protoc) generates from the published `profile.proto` (Debian's
//! `golang-github-google-pprof-dev` ships it; `cargo xtask ci` installs it), run by
//! `read_pprof.py`, which checks the profile's references and prints a JSON summary.
//!
//! The Python packages are pip-installed into the including test's target directory on
//! first use (pinned, nothing outside `target/`). A test that cannot have the reader fails,
//! saying what is missing: a check that cannot run is not a pass.
//!
//! Shared by the tests of fdr-pprof, fdr-cli and fdr-admin (`#[path]`-included).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fdr_test_support::python::{GRPCIO_TOOLS_PY, PPROF};

/// Where Debian's package puts the published `profile.proto`.
const DEBIAN_PROFILE_PROTO: &str =
    "/usr/share/gocode/src/github.com/google/pprof/proto/profile.proto";

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The published `profile.proto`: `FDR_PPROF_PROTO` if set, else Debian's.
fn profile_proto() -> PathBuf {
    std::env::var_os("FDR_PPROF_PROTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_PROFILE_PROTO))
}

fn imports(site: &Path, generated: &Path) -> bool {
    Command::new("python3")
        .args(["-c", "import profile_pb2"])
        .env("PYTHONPATH", python_path(site, generated))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn python_path(site: &Path, generated: &Path) -> String {
    format!("{}:{}", generated.display(), site.display())
}

/// (site-packages, generated classes), made on first use.
fn setup() -> Result<(PathBuf, PathBuf), String> {
    let site = tmp().join("pprof-python");
    let generated = tmp().join("pprof-generated");
    if imports(&site, &generated) {
        return Ok((site, generated));
    }
    let proto = profile_proto();
    if !proto.is_file() {
        return Err(format!(
            "{} is missing: install Debian's golang-github-google-pprof-dev (or set FDR_PPROF_PROTO to the published profile.proto)",
            proto.display()
        ));
    }
    let site = PPROF.site_in(&tmp())?;
    // Generated under a name of this process, then moved into place whole: several test
    // binaries may read profiles at once on a fresh target.
    let partial = tmp().join(format!("pprof-generated.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| e.to_string())?;
    let dir = proto.parent().expect("a file has a directory");
    let out = Command::new("python3")
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", dir.display()))
        .arg(format!("--python_out={}", partial.display()))
        .arg(&proto)
        .env("PYTHONPATH", &site)
        .output()
        .map_err(|e| format!("python3 is not available: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "protoc on {} failed: {}",
            proto.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Fails when another test put its copy there first (a directory that is not empty):
    // that one is kept, unless it does not import.
    if std::fs::rename(&partial, &generated).is_err() && !imports(&site, &generated) {
        let _ = std::fs::remove_dir_all(&generated);
        std::fs::rename(&partial, &generated)
            .map_err(|e| format!("moving {} into place: {e}", partial.display()))?;
    }
    let _ = std::fs::remove_dir_all(&partial);
    if imports(&site, &generated) {
        Ok((site, generated))
    } else {
        Err("generated, but profile_pb2 does not import".into())
    }
}

/// Reads the gzipped profile at `path`; panics (failing the test) when the reader cannot be
/// had or the profile does not read or its references do not hold.
pub fn read(path: &Path) -> serde_json::Value {
    static SETUP: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    let (site, generated) = match SETUP.get_or_init(setup) {
        Ok(s) => s,
        Err(why) => panic!(
            "the pprof check needs python3 with pip and PyPI ({GRPCIO_TOOLS_PY}) and the published profile.proto (`cargo xtask ci` installs both): {why}"
        ),
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fdr-pprof/tests/reader/read_pprof.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(path)
        .env("PYTHONPATH", python_path(site, generated))
        .output()
        .expect("python3 ran before");
    assert!(
        out.status.success(),
        "{} does not read as a pprof profile: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reader prints JSON")
}

/// The functions of `summary["flat"]` (or `"cum"`), heaviest first.
pub fn top(summary: &serde_json::Value, which: &str) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = summary[which]
        .as_object()
        .expect("a map of functions")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}
