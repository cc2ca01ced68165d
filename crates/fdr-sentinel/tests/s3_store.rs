//! The S3 store against a real S3-compatible server (moto, on 127.0.0.1, checking every
//! request's signature): incidents round trip, list in pages, keep to their retention, and
//! a failure (a dump that fails midway, wrong credentials, a missing bucket, a stopped or
//! silent server) leaves nothing visible and says what failed.

#[path = "common/moto.rs"]
mod moto;

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use fdr_sentinel::{IncidentMeta, IncidentStore, Retention, S3Config, S3Store, StoreError};
use moto::Moto;

/// The binary's server, shared by its tests (each in its own bucket); it exits with the
/// process.
fn server() -> MutexGuard<'static, Moto> {
    static MOTO: OnceLock<Mutex<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| Mutex::new(Moto::start()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn meta(id: &str, t: u64) -> IncidentMeta {
    IncidentMeta {
        id: id.to_owned(),
        rule: "r".into(),
        condition: "r: m value > 1 for 1".into(),
        metric: "m".into(),
        value: 2.0,
        threshold: 1.0,
        values: vec![("r".into(), 2.0)],
        time_unix_ms: t,
        host: "h".into(),
        pid: 7,
        service_version: Some("1.2.3".into()),
        bytes: 0,
        cost: None,
    }
}

/// `n` bytes that are not all alike.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn write(bytes: Vec<u8>) -> impl FnMut(&mut dyn Write) -> io::Result<u64> {
    move |out| out.write_all(&bytes).map(|()| bytes.len() as u64)
}

fn ids(store: &S3Store) -> Vec<String> {
    store
        .list()
        .unwrap()
        .incidents
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn assert_spool_empty(config: &S3Config) {
    let left: Vec<_> = std::fs::read_dir(&config.spool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "spool files left: {left:?}");
}

fn keys(names: &[(&str, u64)]) -> Vec<(String, u64)> {
    names.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[test]
fn incidents_round_trip_and_list_newest_first_in_pages() {
    let mut moto = server();
    let config = moto.config("round-trip", "svc/incidents");
    let store = S3Store::new(config.clone()).unwrap();
    store.create_bucket().unwrap();
    store
        .create_bucket()
        .expect("a bucket already ours is fine");

    let stored = store.put(&meta("a", 1), &mut write(data(10))).unwrap();
    assert_eq!(stored.bytes, 10);
    // Over one 256 KiB frame of the upload.
    let big = data(600 << 10);
    store.put(&meta("b", 2), &mut write(big.clone())).unwrap();
    assert_spool_empty(&config);

    let listing = store.list().unwrap();
    assert!(listing.unreadable.is_empty());
    let got: Vec<_> = listing.incidents.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got, ["b", "a"]);
    assert_eq!(
        listing.incidents[1],
        IncidentMeta {
            bytes: 10,
            ..meta("a", 1)
        }
    );
    assert_eq!(listing.incidents[0].bytes, big.len() as u64);

    let mut reader = store.open("b").unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(got == big, "the dump read back differs");
    drop(reader);
    assert_spool_empty(&config);
    assert!(matches!(store.open("zz"), Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.open("../etc/passwd"),
        Err(StoreError::BadId(_))
    ));
    assert!(matches!(
        store.put(&meta("a/b", 3), &mut write(data(1))),
        Err(StoreError::BadId(_))
    ));

    // What the server holds, as another client lists it.
    let a_json = moto
        .keys("round-trip")
        .into_iter()
        .find(|(k, _)| k == "svc/incidents/a.json")
        .unwrap()
        .1;
    let b_json = moto
        .keys("round-trip")
        .into_iter()
        .find(|(k, _)| k == "svc/incidents/b.json")
        .unwrap()
        .1;
    assert_eq!(
        moto.keys("round-trip"),
        keys(&[
            ("svc/incidents/a.fdr", 10),
            ("svc/incidents/a.json", a_json),
            ("svc/incidents/b.fdr", 600 << 10),
            ("svc/incidents/b.json", b_json),
        ])
    );

    // One key per page: the listing follows the continuation tokens.
    let paged = S3Store::new(S3Config {
        list_page_keys: 1,
        ..config.clone()
    })
    .unwrap();
    assert_eq!(ids(&paged), ["b", "a"]);
    // Another prefix sees none of them.
    let other = S3Store::new(S3Config {
        prefix: "svc".into(),
        ..config
    })
    .unwrap();
    assert!(ids(&other).is_empty());
}

#[test]
fn retention_drops_the_oldest_by_count_and_bytes() {
    let mut moto = server();
    let config = S3Config {
        retention: Retention {
            max_count: 3,
            max_bytes: 250,
        },
        ..moto.config("retention", "")
    };
    let store = S3Store::new(config).unwrap();
    store.create_bucket().unwrap();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        store
            .put(&meta(id, i as u64), &mut write(data(100)))
            .unwrap();
    }
    // Three fit the count but not the bytes: two are kept.
    assert_eq!(ids(&store), ["d", "c"]);
    // By count alone.
    let by_count = S3Store::new(S3Config {
        retention: Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
        ..store.config().clone()
    })
    .unwrap();
    by_count.put(&meta("e", 5), &mut write(data(10))).unwrap();
    assert_eq!(ids(&store), ["e"]);
    // The newest stays even when it alone is over.
    store.put(&meta("f", 9), &mut write(data(1000))).unwrap();
    assert_eq!(ids(&store), ["f"]);
    let left: Vec<_> = moto.keys("retention").into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, ["f.fdr", "f.json"]);
}

#[test]
fn a_dump_that_fails_midway_leaves_no_object() {
    let mut moto = server();
    let config = moto.config("fails-midway", "p");
    let store = S3Store::new(config.clone()).unwrap();
    store.create_bucket().unwrap();
    let e = store
        .put(&meta("a", 1), &mut |out| {
            out.write_all(&[1; 100])?;
            Err(io::Error::other("the ring went away"))
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::Dump { written: 100, .. }), "{e}");
    assert!(e.to_string().contains("the ring went away"), "{e}");
    assert!(store.list().unwrap().incidents.is_empty());
    assert_eq!(moto.keys("fails-midway"), []);
    assert_spool_empty(&config);
}

#[test]
fn unreadable_sidecars_are_reported_and_halves_are_not_listed() {
    let mut moto = server();
    let store = S3Store::new(moto.config("unreadable", "p")).unwrap();
    store.create_bucket().unwrap();
    store.put(&meta("good", 1), &mut write(data(5))).unwrap();
    moto.put("unreadable", "p/bad.fdr", b"dump");
    moto.put("unreadable", "p/bad.json", b"{\"id\": 3}");
    // A dump whose sidecar never came (young: retention leaves it for an hour), a sidecar
    // alone, and objects that are not incidents.
    moto.put("unreadable", "p/half.fdr", b"dump");
    moto.put("unreadable", "p/lone.json", b"{}");
    moto.put("unreadable", "p/notes.txt", b"hello");
    moto.put("unreadable", "p/deeper/x.json", b"{}");
    moto.put("unreadable", "p/deeper/x.fdr", b"{}");
    let listing = store.list().unwrap();
    let got: Vec<_> = listing.incidents.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got, ["good"]);
    assert_eq!(
        listing.unreadable,
        [("bad".to_owned(), "field `id`: expected a string".to_owned())]
    );
    assert!(matches!(store.open("half"), Err(StoreError::NotFound(_))));
    // Retention after a put leaves what is not past it, and young halves, in place.
    store.put(&meta("next", 2), &mut write(data(5))).unwrap();
    assert_eq!(moto.keys("unreadable").len(), 11);
}

#[test]
fn ids_and_sizes_come_from_keys_never_from_sidecars() {
    let mut moto = server();
    let config = S3Config {
        retention: Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
        ..moto.config("ids-from-keys", "p")
    };
    let store = S3Store::new(config).unwrap();
    store.create_bucket().unwrap();
    // Outside the prefix: what retention must never reach.
    moto.put("ids-from-keys", "victim.fdr", b"not an incident");
    moto.put("ids-from-keys", "victim.json", b"not an incident");
    // An old incident whose sidecar names another id, and claims no bytes.
    moto.put("ids-from-keys", "p/old.fdr", &data(500));
    let lie = IncidentMeta {
        id: "../victim".into(),
        ..meta("old", 1)
    };
    moto.put(
        "ids-from-keys",
        "p/old.json",
        lie.to_json().to_string().as_bytes(),
    );
    let listing = store.list().unwrap();
    assert_eq!(
        listing.incidents,
        [IncidentMeta {
            bytes: 500,
            ..meta("old", 1)
        }]
    );
    // The next incident's retention removes `old`, and nothing outside the prefix.
    store.put(&meta("new", 2), &mut write(data(10))).unwrap();
    assert_eq!(ids(&store), ["new"]);
    let left: Vec<_> = moto
        .keys("ids-from-keys")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        left,
        ["p/new.fdr", "p/new.json", "victim.fdr", "victim.json"]
    );
}

#[cfg(unix)]
#[test]
fn spool_files_are_private_and_never_follow_a_planted_symlink() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let moto = server();
    let config = moto.config("spool", "");
    drop(moto);
    let store = S3Store::new(config.clone()).unwrap();
    store.create_bucket().unwrap();
    let victim = config.spool_dir.with_extension("victim");
    std::fs::write(&victim, b"precious").unwrap();
    // Symlinks at the first spool names the store would take.
    let planted: Vec<_> = (0..8)
        .map(|n| {
            let path = config
                .spool_dir
                .join(format!(".fdr-s3.spool.tmp-{}-{n}", std::process::id()));
            symlink(&victim, &path).unwrap();
            path
        })
        .collect();
    let mut spooled = Vec::new();
    store
        .put(&meta("a", 1), &mut |out: &mut dyn Write| {
            for e in std::fs::read_dir(&config.spool_dir).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                if m.is_file() {
                    spooled.push(m.permissions().mode() & 0o7777);
                }
            }
            out.write_all(b"dump").map(|()| 4)
        })
        .unwrap();
    assert_eq!(spooled, [0o600], "one spool file, private");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let mut got = Vec::new();
    store.open("a").unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, b"dump");
    for p in planted {
        std::fs::remove_file(p).unwrap();
    }
    assert_spool_empty(&config);
    std::fs::remove_file(&victim).unwrap();
}

#[test]
fn inside_a_service_runtime_the_store_works_and_drops() {
    let moto = server();
    let config = moto.config("in-runtime", "");
    drop(moto);
    let service = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    service.block_on(async move {
        // Blocking, as documented (an async service would use `spawn_blocking`), but
        // neither a panic nor a deadlock on the service's runtime.
        let store = S3Store::new(config).unwrap();
        store.create_bucket().unwrap();
        store.put(&meta("a", 1), &mut write(data(10))).unwrap();
        assert_eq!(ids(&store), ["a"]);
        drop(store);
    });
}

fn remote(e: &StoreError) -> (Option<u16>, Option<&str>) {
    match e {
        StoreError::Remote { status, code, .. } => (*status, code.as_deref()),
        other => panic!("not a remote error: {other}"),
    }
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_named() {
    let mut moto = server();
    let config = moto.config("credentials", "p");
    S3Store::new(config.clone())
        .unwrap()
        .create_bucket()
        .unwrap();

    let wrong_secret = S3Store::new(S3Config {
        secret_access_key: "not-the-secret".into(),
        ..config.clone()
    })
    .unwrap();
    let e = wrong_secret
        .put(&meta("a", 1), &mut write(data(10)))
        .unwrap_err();
    assert_eq!(
        remote(&e),
        (Some(403), Some("SignatureDoesNotMatch")),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(
            "incident store: uploading the dump s3://credentials/p/a.fdr: HTTP 403 \
             SignatureDoesNotMatch: "
        ),
        "{text}"
    );
    let e = wrong_secret.list().unwrap_err();
    assert_eq!(
        remote(&e),
        (Some(403), Some("SignatureDoesNotMatch")),
        "{e}"
    );

    let unknown_key = S3Store::new(S3Config {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        ..config.clone()
    })
    .unwrap();
    let e = unknown_key
        .put(&meta("a", 1), &mut write(data(10)))
        .unwrap_err();
    assert_eq!(remote(&e), (Some(403), Some("InvalidAccessKeyId")), "{e}");
    assert_eq!(moto.keys("credentials"), []);

    let missing = S3Store::new(S3Config {
        bucket: "no-such-bucket".into(),
        ..config.clone()
    })
    .unwrap();
    let e = missing
        .put(&meta("a", 1), &mut write(data(10)))
        .unwrap_err();
    assert_eq!(remote(&e), (Some(404), Some("NoSuchBucket")), "{e}");
    assert!(e.to_string().contains("s3://no-such-bucket/p/a.fdr"), "{e}");
    assert_spool_empty(&config);
}

/// A key allowed everything in S3 but `denied` on `resource`.
fn restricted(moto: &mut Moto, denied: &str, resource: &str) -> (String, String) {
    moto.user(&serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": denied, "Resource": resource},
        ],
    }))
}

#[test]
fn a_refused_sidecar_takes_its_dump_away() {
    let mut moto = server();
    let config = moto.config("refused-sidecar", "p");
    S3Store::new(config.clone())
        .unwrap()
        .create_bucket()
        .unwrap();
    let (access_key_id, secret_access_key) = restricted(
        &mut moto,
        "s3:PutObject",
        "arn:aws:s3:::refused-sidecar/*.json",
    );
    let store = S3Store::new(S3Config {
        access_key_id,
        secret_access_key,
        ..config.clone()
    })
    .unwrap();
    let e = store.put(&meta("a", 1), &mut write(data(10))).unwrap_err();
    assert_eq!(remote(&e), (Some(403), Some("AccessDenied")), "{e}");
    assert!(
        e.to_string()
            .starts_with("incident store: uploading the sidecar s3://refused-sidecar/p/a.json"),
        "{e}"
    );
    // The dump went up, and was deleted again.
    assert_eq!(moto.keys("refused-sidecar"), []);
    assert_spool_empty(&config);
}

#[test]
fn a_key_that_may_not_delete_says_retention_failed() {
    let mut moto = server();
    let config = S3Config {
        retention: Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
        ..moto.config("no-delete", "")
    };
    S3Store::new(config.clone())
        .unwrap()
        .create_bucket()
        .unwrap();
    let (access_key_id, secret_access_key) =
        restricted(&mut moto, "s3:DeleteObject", "arn:aws:s3:::no-delete/*");
    let store = S3Store::new(S3Config {
        access_key_id,
        secret_access_key,
        ..config
    })
    .unwrap();
    store.put(&meta("a", 1), &mut write(data(10))).unwrap();
    let e = store.put(&meta("b", 2), &mut write(data(10))).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "incident store: incident `b` was stored, but applying the retention failed: \
             incident store: deleting past the retention s3://no-delete/a.json: HTTP 403 \
             AccessDenied: "
        ),
        "{e}"
    );
    assert_eq!(ids(&store), ["b", "a"]);
}

#[test]
fn a_stopped_server_and_a_silent_one_are_no_answer() {
    let mut moto = Moto::start();
    let store = S3Store::new(moto.config("stopped", "")).unwrap();
    store.create_bucket().unwrap();
    store.put(&meta("a", 1), &mut write(data(10))).unwrap();
    moto.stop();
    let e = store.put(&meta("b", 2), &mut write(data(10))).unwrap_err();
    assert_eq!(remote(&e), (None, None), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("incident store: uploading the dump s3://stopped/b.fdr: no answer: ")
            && text.contains("connecting to 127.0.0.1:"),
        "{text}"
    );
    assert!(store.list().is_err());
    assert!(store.open("a").is_err());

    // A server that takes the connection and never answers: the timeout ends the request.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = std::thread::spawn(move || {
        let conn = listener.accept().map(|(c, _)| c);
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let store = S3Store::new(S3Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        timeout: Duration::from_millis(500),
        ..moto.config("silent", "")
    })
    .unwrap();
    let started = std::time::Instant::now();
    let e = store.list().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        e.to_string()
            .ends_with("listing s3://silent/: no answer: no complete answer within 500ms"),
        "{e}"
    );
    silent.join().unwrap();
}
