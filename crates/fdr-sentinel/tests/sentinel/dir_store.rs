//! The directory store against a hostile or careless directory: ids and sizes come from
//! file names and files, never from a sidecar's content; a dump found without its sidecar
//! (a panic dump) is kept and listed, not removed; planted symlinks are never followed;
//! files are private; a directory others may write into is reported.

use crate::common::{self, meta};

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use fdr_sentinel::{DirStore, IncidentMeta, IncidentStore, Retention, StoreError};

fn write(n: usize) -> impl FnMut(&mut dyn Write) -> io::Result<u64> {
    move |out| out.write_all(&vec![7u8; n]).map(|()| n as u64)
}

fn ids(s: &DirStore) -> Vec<String> {
    s.list()
        .unwrap()
        .incidents
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn ids_and_sizes_come_from_names_never_from_sidecars() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let base = common::temp_dir("ids-from-names");
    let dir = base.join("incidents");
    fs::create_dir_all(&dir).unwrap();
    // Outside the store: what retention must never reach.
    fs::write(base.join("victim.fdr"), b"not an incident").unwrap();
    fs::write(base.join("victim.json"), b"not an incident").unwrap();
    let s = DirStore::new(
        &dir,
        Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
    )
    .unwrap();
    // An old incident whose sidecar names another id, and claims no bytes.
    fs::write(dir.join("old.fdr"), vec![1; 500]).unwrap();
    let lie = IncidentMeta {
        id: "../victim".into(),
        ..meta("old", 1, None)
    };
    fs::write(dir.join("old.json"), lie.to_json().to_string()).unwrap();
    assert_eq!(
        s.list().unwrap().incidents,
        [IncidentMeta {
            bytes: 500,
            ..meta("old", 1, None)
        }]
    );
    // The next incident's retention removes `old`, and nothing outside.
    s.put(&meta("new", 2, None), &mut write(10)).unwrap();
    assert_eq!(ids(&s), ["new"]);
    assert_eq!(
        fs::read(base.join("victim.fdr")).unwrap(),
        b"not an incident"
    );
    assert_eq!(
        fs::read(base.join("victim.json")).unwrap(),
        b"not an incident"
    );
    assert_eq!(names(&dir), ["new.fdr", "new.json"]);
    fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_panic_dump_found_without_a_sidecar_is_kept_and_listed() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let dir = common::temp_dir("found-dump");
    fs::create_dir_all(&dir).unwrap();
    // As `fdr::dump_on_panic` named its dumps before it wrote sidecars.
    fs::write(dir.join("panic-4242-1700000000.fdr"), vec![3; 3000]).unwrap();
    let s = DirStore::new(&dir, Retention::default()).unwrap();
    let listing = s.list().unwrap();
    let [m] = &listing.incidents[..] else {
        panic!("{listing:?} in {:?}", names(&dir))
    };
    assert_eq!(
        (
            m.id.as_str(),
            m.rule.as_str(),
            m.pid,
            m.bytes,
            m.time_unix_ms
        ),
        (
            "panic-4242-1700000000",
            "panic",
            4242,
            3000,
            1_700_000_000_000
        )
    );
    let mut dump = Vec::new();
    s.open(&m.id).unwrap().read_to_end(&mut dump).unwrap();
    assert_eq!(dump, vec![3; 3000]);
    // Retained by the same policy as the sentinel's incidents.
    let s = DirStore::new(
        &dir,
        Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
    )
    .unwrap();
    s.put(
        &meta("20300101T000000.000Z-r", 1_900_000_000_000, None),
        &mut write(1),
    )
    .unwrap();
    assert_eq!(ids(&s), ["20300101T000000.000Z-r"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
#[test]
fn planted_symlinks_are_never_followed_files_are_private_and_an_open_directory_warns() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    use std::os::unix::fs::{PermissionsExt, symlink};
    let base = common::temp_dir("symlinks");
    let dir = base.join("incidents");
    fs::create_dir_all(&base).unwrap();
    let victim = base.join("victim");
    fs::write(&victim, b"precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    let s = DirStore::new(&dir, Retention::default()).unwrap();
    assert_eq!(mode(&dir), 0o700, "a directory it creates is private");
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    // Symlinks at the first temporary names (`.ID.EXT.tmp-PID-N`) the dump and its sidecar
    // would take, and at the names an earlier version used.
    let pid = std::process::id();
    for n in 0..8 {
        for ext in ["fdr", "json"] {
            symlink(&victim, dir.join(format!(".a.{ext}.tmp-{pid}-{n}"))).unwrap();
        }
    }
    for name in [".tmp-a.fdr", ".tmp-a.json"] {
        symlink(&victim, dir.join(name)).unwrap();
    }
    s.put(&meta("a", 1, None), &mut write(10)).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(mode(&victim), 0o644);
    for ext in ["fdr", "json"] {
        let path = dir.join(format!("a.{ext}"));
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let mut got = Vec::new();
    s.open("a").unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, [7; 10]);

    // A dump or a sidecar that is a symlink is not an incident, and is not opened.
    symlink(&victim, dir.join("b.fdr")).unwrap();
    fs::write(dir.join("b.json"), meta("b", 2, None).to_json().to_string()).unwrap();
    fs::write(dir.join("c.fdr"), b"dump").unwrap();
    symlink(&victim, dir.join("c.json")).unwrap();
    assert_eq!(ids(&s), ["a"]);
    assert!(s.open("b").is_err());
    assert!(matches!(s.open("c"), Err(StoreError::NotFound(_))));

    // Another mode, when asked for; never one others may write.
    let group = DirStore::with_file_mode(base.join("group"), Retention::default(), 0o640).unwrap();
    group.put(&meta("g", 1, None), &mut write(1)).unwrap();
    assert_eq!(mode(&base.join("group")), 0o750);
    assert_eq!(mode(&base.join("group/g.fdr")), 0o640);
    assert_eq!(mode(&base.join("group/g.json")), 0o640);
    let e = DirStore::with_file_mode(base.join("open"), Retention::default(), 0o666).unwrap_err();
    assert!(
        e.to_string().contains("no one but the owner may write"),
        "{e}"
    );

    // A directory others may write into is reported.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let w = s.warnings();
    assert!(
        w.len() == 1 && w[0].contains("is writable by others (mode 0o777)"),
        "{w:?}"
    );
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(
        s.warnings().len(),
        1,
        "sticky or not, others can plant names"
    );
    // A sentinel on it logs the warning at start and counts it; its store's files have the
    // mode it was given.
    let (lines, log) = common::log();
    let never = || fdr_sentinel::Rule::parse("never: process_threads value < 0").unwrap();
    let sentinel = fdr_sentinel::Sentinel::builder()
        .rule(never())
        .dir(&dir, Retention::default())
        .file_mode(0o640)
        .log_with(log)
        .start()
        .unwrap();
    assert_eq!(sentinel.stats().store_warnings, 1);
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("warning: the incident directory") && logged.contains("0o1777"),
        "{logged}"
    );
    sentinel
        .store()
        .put(&meta("d", 3, None), &mut write(1))
        .unwrap();
    assert_eq!(mode(&dir.join("d.fdr")), 0o640);
    sentinel.stop();
    let e = fdr_sentinel::Sentinel::builder()
        .rule(never())
        .dir(&dir, Retention::default())
        .file_mode(0o646)
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("file mode 0o646"), "{e}");
    fs::remove_dir_all(&base).unwrap();
}
