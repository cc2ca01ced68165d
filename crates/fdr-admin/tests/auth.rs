//! Binding and authentication, routing errors, and a recorder that was never started.
//! (Own test binary: nothing here starts the recorder.)

mod common;

use std::net::SocketAddr;

use common::get;
use fdr_admin::{Admin, Error};

fn loopback_of(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

#[test]
fn a_non_loopback_bind_without_auth_refuses_to_start() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let e = Admin::builder().bind(addr).start().unwrap_err();
        assert!(
            matches!(e, Error::Unauthenticated { addr: a } if a == addr),
            "{addr}: {e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("not a loopback address"), "{msg}");
        assert!(msg.contains(".bearer_token("), "{msg}");
    }
    // Bad credentials are refused before anything binds.
    let e = Admin::builder()
        .bind(([0, 0, 0, 0], 0))
        .bearer_token("two words")
        .start()
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(fdr_admin::ConfigError::BearerToken)),
        "{e}"
    );
    assert!(
        !e.to_string().contains("two words"),
        "the token is not echoed: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_required_when_set_and_checked_exactly() {
    let admin = Admin::builder()
        .bind(([0, 0, 0, 0], 0))
        .bearer_token("s3cret-T0ken")
        .start()
        .expect("with a token, 0.0.0.0 is allowed");
    assert!(admin.local_addr().ip().is_unspecified());
    let addr = loopback_of(admin.local_addr());
    for path in ["/debug/fdr/", "/metrics", "/debug/fdr/flight", "/nope"] {
        let r = get(addr, path, &[]).await;
        assert_eq!(r.status, 401, "{path} without credentials: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"fdr-admin\"")
        );
    }
    for wrong in [
        "Bearer s3cret-T0ke",
        "Bearer s3cret-T0ken2",
        "Bearer S3CRET-T0KEN",
        "Basic czNjcmV0LVQwa2Vu",
        "s3cret-T0ken",
    ] {
        let r = get(addr, "/debug/fdr/", &[("authorization", wrong)]).await;
        assert_eq!(r.status, 401, "{wrong}");
    }
    let ok = [("authorization", "Bearer s3cret-T0ken")];
    let r = get(addr, "/debug/fdr/", &ok).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let index = r.text();
    for endpoint in [
        "/debug/fdr/flight",
        "/debug/fdr/trace?seconds=N",
        "/metrics",
    ] {
        assert!(index.contains(endpoint), "index lacks {endpoint}:\n{index}");
    }
    // No sentinel: no incidents listed.
    assert!(!index.contains("/incidents"), "{index}");
    assert_eq!(get(addr, "/metrics", &ok).await.status, 200);
    admin.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_and_either_credential_passes_when_both_are_set() {
    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .basic_auth("ops", "pa:ss word")
        .start()
        .unwrap();
    let addr = admin.local_addr();
    let r = get(addr, "/debug/fdr/", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"fdr-admin\", charset=\"UTF-8\"")
    );
    // base64("ops:pa:ss word") and base64("ops:pa:ss wore").
    let right = [("authorization", "Basic b3BzOnBhOnNzIHdvcmQ=")];
    let wrong = [("authorization", "Basic b3BzOnBhOnNzIHdvcmU=")];
    assert_eq!(get(addr, "/debug/fdr/", &right).await.status, 200);
    assert_eq!(get(addr, "/debug/fdr/", &wrong).await.status, 401);
    admin.shutdown();

    let both = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .basic_auth("ops", "pa:ss word")
        .bearer_token("tok")
        .start()
        .unwrap();
    let addr = both.local_addr();
    let r = get(addr, "/debug/fdr/", &[]).await;
    let challenges: Vec<_> = r.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert_eq!(get(addr, "/debug/fdr/", &right).await.status, 200);
    assert_eq!(
        get(addr, "/debug/fdr/", &[("authorization", "Bearer tok")])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_wrong_methods_and_bad_parameters_are_refused_with_a_reason() {
    let admin = Admin::builder().bind(([127, 0, 0, 1], 0)).start().unwrap();
    let addr = admin.local_addr();
    for path in ["/", "/debug/fdr/nope", "/debug/fdr/flight/", "/metricsx"] {
        let r = get(addr, path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains("/debug/fdr/"), "{}", r.text());
    }
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let r = common::request(addr, method, "/debug/fdr/flight", &[])
            .await
            .unwrap();
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET"));
    }
    for (path, why) in [
        ("/debug/fdr/flight?seconds=3", "unknown parameter `seconds`"),
        ("/debug/fdr/trace?secs=3", "unknown parameter `secs`"),
        ("/debug/fdr/trace?seconds=0", "seconds=0"),
        ("/debug/fdr/trace?seconds=31", "seconds=31"),
        ("/debug/fdr/trace?seconds=abc", "seconds=\"abc\""),
        ("/debug/fdr/trace?seconds=2&seconds=3", "twice"),
    ] {
        let r = get(addr, path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let text = r.text();
        assert!(text.contains(why), "{path}: {text}");
        assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    }
    // Loopback without credentials is open.
    assert_eq!(get(addr, "/debug/fdr", &[]).await.status, 200);
    // No sentinel: incidents are not found, with the reason.
    let r = get(addr, "/debug/fdr/incidents", &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no sentinel"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_started_recorder_dumps_and_captures_are_unavailable_not_throttled() {
    let admin = Admin::builder().bind(([127, 0, 0, 1], 0)).start().unwrap();
    let addr = admin.local_addr();
    let r = get(addr, "/debug/fdr/flight", &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("not started"), "{}", r.text());
    // A capture that could not start leaves no cooldown behind.
    for _ in 0..2 {
        let r = get(addr, "/debug/fdr/trace?seconds=1", &[]).await;
        assert_eq!(r.status, 503, "{}", r.text());
    }
}
