//! The object store over S3 against a real S3-compatible server (moto, on 127.0.0.1,
//! checking every request's signature), over plain HTTP and over TLS with a CA made for the
//! test: incidents round trip (large dumps as multipart uploads), keep to their retention,
//! and a failure (a dump that fails midway, wrong credentials, a missing bucket, an
//! untrusted certificate, a stopped or silent server) leaves nothing visible and says what
//! failed, in object_store's words.

use crate::common::meta;
use crate::moto;

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use fdr_sentinel::{BucketConfig, BucketStore, IncidentMeta, IncidentStore, Retention, StoreError};
use moto::Moto;

/// The service every incident here names (so its sidecar carries the process's identity).
const SERVICE: Option<&str> = Some("checkout");

/// The binary's server, shared by its tests (each in its own bucket); it exits with the
/// process.
fn server() -> MutexGuard<'static, Moto> {
    static MOTO: OnceLock<Mutex<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| Mutex::new(Moto::start()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// `n` bytes that are not all alike.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn write(bytes: Vec<u8>) -> impl FnMut(&mut dyn Write) -> io::Result<u64> {
    move |out| out.write_all(&bytes).map(|()| bytes.len() as u64)
}

fn ids(store: &BucketStore) -> Vec<String> {
    store
        .list()
        .unwrap()
        .incidents
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn assert_spool_empty(config: &BucketConfig) {
    let left: Vec<_> = std::fs::read_dir(&config.spool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "spool files left: {left:?}");
}

fn keys(names: &[(&str, u64)]) -> Vec<(String, u64)> {
    names.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Incidents round trip through `moto`'s bucket: a small dump in one `PUT`, a large one as
/// a multipart upload, both read back whole; another prefix sees none of them.
fn round_trip(moto: &mut Moto, bucket: &str) {
    let config = BucketConfig {
        part_bytes: 5 << 20,
        ..moto.config(bucket, "svc/incidents")
    };
    moto.mkbucket(bucket);
    let store = BucketStore::new(config.clone()).unwrap();

    let stored = store
        .put(&meta("a", 1, SERVICE), &mut write(data(10)))
        .unwrap();
    assert_eq!(stored.bytes, 10);
    // Three parts of a multipart upload (5, 5 and 2 MiB).
    let big = data(12 << 20);
    store
        .put(&meta("b", 2, SERVICE), &mut write(big.clone()))
        .unwrap();
    assert_spool_empty(&config);
    assert_eq!(moto.open_uploads(bucket), 0, "the upload was completed");

    let listing = store.list().unwrap();
    assert!(listing.unreadable.is_empty());
    let got: Vec<_> = listing.incidents.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got, ["b", "a"]);
    assert_eq!(
        listing.incidents[1],
        IncidentMeta {
            bytes: 10,
            ..meta("a", 1, SERVICE)
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
        store.put(&meta("a/b", 3, SERVICE), &mut write(data(1))),
        Err(StoreError::BadId(_))
    ));

    // What the server holds, as another client lists it.
    let all = moto.keys(bucket);
    let size = |k: &str| all.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(
        all,
        keys(&[
            ("svc/incidents/a.fdr", 10),
            ("svc/incidents/a.json", size("svc/incidents/a.json")),
            ("svc/incidents/b.fdr", 12 << 20),
            ("svc/incidents/b.json", size("svc/incidents/b.json")),
        ])
    );

    // Another prefix sees none of them.
    let other = BucketStore::new(BucketConfig {
        url: format!("s3://{bucket}/svc"),
        ..config
    })
    .unwrap();
    assert!(ids(&other).is_empty());
}

#[test]
fn incidents_round_trip_over_http() {
    round_trip(&mut server(), "round-trip");
}

#[test]
fn incidents_round_trip_over_tls_with_a_private_ca() {
    let mut moto = Moto::start_tls();
    round_trip(&mut moto, "round-trip-tls");
    // Without the CA, the server's certificate is not trusted: named, and nothing stored.
    let untrusting = BucketStore::new(BucketConfig {
        root_certificates: None,
        timeout: Duration::from_secs(5),
        ..moto.config("round-trip-tls", "untrusted")
    })
    .unwrap();
    let e = untrusting
        .put(&meta("c", 3, SERVICE), &mut write(data(10)))
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(
            "incident store: uploading the dump s3://round-trip-tls/untrusted/c.fdr: Generic: "
        ) && text.to_ascii_lowercase().contains("certificate"),
        "{text}"
    );
    assert!(
        !moto
            .keys("round-trip-tls")
            .iter()
            .any(|(k, _)| k.starts_with("untrusted/")),
    );
    // A CA file with no certificate in it is refused at once.
    let empty = std::env::temp_dir().join(format!("fdr-empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, b"not a certificate\n").unwrap();
    let e = BucketStore::new(BucketConfig {
        root_certificates: Some(empty.clone()),
        ..moto.config("round-trip-tls", "")
    })
    .unwrap_err();
    assert!(e.to_string().contains("root certificates"), "{e}");
    std::fs::remove_file(&empty).unwrap();
}

#[test]
fn retention_drops_the_oldest_by_count_and_bytes() {
    let mut moto = server();
    let config = BucketConfig {
        retention: Retention {
            max_count: 3,
            max_bytes: 250,
        },
        ..moto.config("retention", "")
    };
    moto.mkbucket("retention");
    let store = BucketStore::new(config).unwrap();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        store
            .put(&meta(id, i as u64, SERVICE), &mut write(data(100)))
            .unwrap();
    }
    // Three fit the count but not the bytes: two are kept.
    assert_eq!(ids(&store), ["d", "c"]);
    // By count alone.
    let by_count = BucketStore::new(BucketConfig {
        retention: Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
        ..store.config().clone()
    })
    .unwrap();
    by_count
        .put(&meta("e", 5, SERVICE), &mut write(data(10)))
        .unwrap();
    assert_eq!(ids(&store), ["e"]);
    // The newest stays even when it alone is over.
    store
        .put(&meta("f", 9, SERVICE), &mut write(data(1000)))
        .unwrap();
    assert_eq!(ids(&store), ["f"]);
    let left: Vec<_> = moto.keys("retention").into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, ["f.fdr", "f.json"]);
}

#[test]
fn a_dump_that_fails_midway_leaves_no_object() {
    let mut moto = server();
    let config = moto.config("fails-midway", "p");
    moto.mkbucket("fails-midway");
    let store = BucketStore::new(config.clone()).unwrap();
    let e = store
        .put(&meta("a", 1, SERVICE), &mut |out| {
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
    moto.mkbucket("unreadable");
    let store = BucketStore::new(moto.config("unreadable", "p")).unwrap();
    store
        .put(&meta("good", 1, SERVICE), &mut write(data(5)))
        .unwrap();
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
    store
        .put(&meta("next", 2, SERVICE), &mut write(data(5)))
        .unwrap();
    assert_eq!(moto.keys("unreadable").len(), 11);
}

#[test]
fn ids_and_sizes_come_from_keys_never_from_sidecars() {
    let mut moto = server();
    let config = BucketConfig {
        retention: Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
        ..moto.config("ids-from-keys", "p")
    };
    moto.mkbucket("ids-from-keys");
    let store = BucketStore::new(config).unwrap();
    // Outside the prefix: what retention must never reach.
    moto.put("ids-from-keys", "victim.fdr", b"not an incident");
    moto.put("ids-from-keys", "victim.json", b"not an incident");
    // An old incident whose sidecar names another id, and claims no bytes.
    moto.put("ids-from-keys", "p/old.fdr", &data(500));
    let lie = IncidentMeta {
        id: "../victim".into(),
        ..meta("old", 1, SERVICE)
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
            ..meta("old", 1, SERVICE)
        }]
    );
    // The next incident's retention removes `old`, and nothing outside the prefix.
    store
        .put(&meta("new", 2, SERVICE), &mut write(data(10)))
        .unwrap();
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
    let mut moto = server();
    let config = moto.config("spool", "");
    moto.mkbucket("spool");
    drop(moto);
    let store = BucketStore::new(config.clone()).unwrap();
    let victim = config.spool_dir.with_extension("victim");
    std::fs::write(&victim, b"precious").unwrap();
    // Symlinks at the first spool names the store would take.
    let planted: Vec<_> = (0..8)
        .map(|n| {
            let path = config
                .spool_dir
                .join(format!(".fdr-bucket.spool.tmp-{}-{n}", std::process::id()));
            symlink(&victim, &path).unwrap();
            path
        })
        .collect();
    let mut spooled = Vec::new();
    store
        .put(&meta("a", 1, SERVICE), &mut |out: &mut dyn Write| {
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
    let mut moto = server();
    let config = moto.config("in-runtime", "");
    moto.mkbucket("in-runtime");
    drop(moto);
    let service = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    service.block_on(async move {
        // Blocking, as documented (an async service would use `spawn_blocking`), but
        // neither a panic nor a deadlock on the service's runtime.
        let store = BucketStore::new(config).unwrap();
        store
            .put(&meta("a", 1, SERVICE), &mut write(data(10)))
            .unwrap();
        assert_eq!(ids(&store), ["a"]);
        drop(store);
    });
}

fn remote(e: &StoreError) -> (Option<u16>, Option<&str>, &str) {
    match e {
        StoreError::Remote {
            status,
            code,
            message,
            ..
        } => (*status, code.as_deref(), message.as_str()),
        other => panic!("not a remote error: {other}"),
    }
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_named() {
    let mut moto = server();
    let config = moto.config("credentials", "p");
    moto.mkbucket("credentials");

    let wrong_secret = BucketStore::new(Moto::with_option(
        config.clone(),
        "aws_secret_access_key",
        "not-the-secret",
    ))
    .unwrap();
    let e = wrong_secret
        .put(&meta("a", 1, SERVICE), &mut write(data(10)))
        .unwrap_err();
    let (status, code, message) = remote(&e);
    assert_eq!((status, code), (None, Some("PermissionDenied")), "{e}");
    assert!(message.contains("SignatureDoesNotMatch"), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "incident store: uploading the dump s3://credentials/p/a.fdr: PermissionDenied: "
        ),
        "{text}"
    );
    let e = wrong_secret.list().unwrap_err();
    assert!(remote(&e).2.contains("SignatureDoesNotMatch"), "{e}");

    let unknown_key = BucketStore::new(Moto::with_option(
        config.clone(),
        "aws_access_key_id",
        "AKIAIOSFODNN7EXAMPLE",
    ))
    .unwrap();
    let e = unknown_key
        .put(&meta("a", 1, SERVICE), &mut write(data(10)))
        .unwrap_err();
    assert!(remote(&e).2.contains("InvalidAccessKeyId"), "{e}");
    assert_eq!(moto.keys("credentials"), []);

    let missing = BucketStore::new(BucketConfig {
        url: "s3://no-such-bucket/p".into(),
        ..config.clone()
    })
    .unwrap();
    let e = missing
        .put(&meta("a", 1, SERVICE), &mut write(data(10)))
        .unwrap_err();
    assert_eq!(remote(&e).1, Some("NotFound"), "{e}");
    assert!(remote(&e).2.contains("NoSuchBucket"), "{e}");
    assert!(e.to_string().contains("s3://no-such-bucket/p/a.fdr"), "{e}");
    assert_spool_empty(&config);

    // A configuration key object_store does not know is refused at once.
    let e = BucketStore::new(Moto::with_option(config, "aws_colour", "blue")).unwrap_err();
    assert!(
        e.to_string()
            .contains("option `aws_colour`: not a s3:// configuration key"),
        "{e}"
    );
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

fn with_key(config: BucketConfig, (id, secret): (String, String)) -> BucketConfig {
    Moto::with_option(
        Moto::with_option(config, "aws_access_key_id", &id),
        "aws_secret_access_key",
        &secret,
    )
}

#[test]
fn a_refused_sidecar_takes_its_dump_away() {
    let mut moto = server();
    let config = moto.config("refused-sidecar", "p");
    moto.mkbucket("refused-sidecar");
    let key = restricted(
        &mut moto,
        "s3:PutObject",
        "arn:aws:s3:::refused-sidecar/*.json",
    );
    let store = BucketStore::new(with_key(config.clone(), key)).unwrap();
    let e = store
        .put(&meta("a", 1, SERVICE), &mut write(data(10)))
        .unwrap_err();
    assert!(remote(&e).2.contains("AccessDenied"), "{e}");
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
    let config = BucketConfig {
        retention: Retention {
            max_count: 1,
            max_bytes: 1 << 30,
        },
        ..moto.config("no-delete", "")
    };
    moto.mkbucket("no-delete");
    let key = restricted(&mut moto, "s3:DeleteObject", "arn:aws:s3:::no-delete/*");
    // One DELETE per object: moto checks a policy on those, not on a bulk DeleteObjects.
    let config = Moto::with_option(config, "aws_disable_bulk_delete", "true");
    let store = BucketStore::new(with_key(config, key)).unwrap();
    store
        .put(&meta("a", 1, SERVICE), &mut write(data(10)))
        .unwrap();
    let e = store
        .put(&meta("b", 2, SERVICE), &mut write(data(10)))
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "incident store: incident `b` was stored, but applying the retention failed: \
             incident store: deleting past the retention s3://no-delete/a.json: "
        ) && e.to_string().contains("AccessDenied"),
        "{e}"
    );
    assert_eq!(ids(&store), ["b", "a"]);
}

#[test]
fn a_stopped_server_and_a_silent_one_are_errors() {
    let mut moto = Moto::start();
    moto.mkbucket("stopped");
    let store = BucketStore::new(BucketConfig {
        timeout: Duration::from_secs(2),
        ..moto.config("stopped", "")
    })
    .unwrap();
    store
        .put(&meta("a", 1, SERVICE), &mut write(data(10)))
        .unwrap();
    moto.stop();
    let e = store
        .put(&meta("b", 2, SERVICE), &mut write(data(10)))
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("incident store: uploading the dump s3://stopped/b.fdr: Generic: "),
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
    let store = BucketStore::new(BucketConfig {
        timeout: Duration::from_millis(500),
        ..Moto::with_option(
            moto.config("silent", ""),
            "aws_endpoint",
            &format!("http://127.0.0.1:{port}"),
        )
    })
    .unwrap();
    let e = store.list().unwrap_err();
    assert!(
        e.to_string()
            .starts_with("incident store: listing s3://silent/: Generic: "),
        "{e}"
    );
    silent.join().unwrap();
}
