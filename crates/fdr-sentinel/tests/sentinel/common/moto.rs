//! A real S3-compatible server for the object store's S3 tests: moto's server, on
//! 127.0.0.1, with AWS Signature Version 4 checked (`tests/s3/moto_server.py`), over plain
//! HTTP or over TLS with a certificate of a CA made for the test by the `openssl` command.
//!
//! moto is installed with pip into this target directory on first use (pinned versions,
//! nothing outside `target/`). Without Python, pip or PyPI the tests fail, saying why: they
//! never pass without having run (`cargo xtask ci` installs python3-pip when missing). The
//! TLS tests fail, saying why, without the `openssl` command.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a test helper module")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use fdr_sentinel::{BucketConfig, Retention};
use fdr_test_support::python::{BOTO3_PY, BOTOCORE_PY, MOTO, MOTO_PY};

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The directory holding moto, installed there when missing.
fn site() -> Result<&'static Path, String> {
    static SITE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SITE.get_or_init(|| MOTO.site_in(&tmp()))
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// A running moto server; stopped when dropped.
pub struct Moto {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A key that may do anything in S3.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The CA that signed the server's certificate, when it speaks TLS.
    pub ca_file: Option<PathBuf>,
}

/// Runs `openssl` with `args` in `dir`; panics, saying why, when it fails or is missing.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS tests make their CA with the `openssl` command, which could not \
                 run: {e}. Install it (Debian: openssl)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate it signed for 127.0.0.1, made in a fresh directory: `(cert, key,
/// ca)`.
fn make_certificates() -> (PathBuf, PathBuf, PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = tmp().join(format!(
        "tls-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=fdr test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    )
}

impl Moto {
    /// Starts a server over plain HTTP; panics, saying why, when moto cannot be had.
    pub fn start() -> Moto {
        Moto::start_with(None)
    }

    /// Starts a server over TLS, its certificate signed by a CA made for it
    /// ([`Moto::ca_file`]); panics, saying why, when moto or openssl cannot be had.
    pub fn start_tls() -> Moto {
        Moto::start_with(Some(make_certificates()))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf, PathBuf)>) -> Moto {
        let site = site().unwrap_or_else(|why| {
            panic!(
                "the S3 store's tests run against moto's S3 server, which could not be \
                 installed: {why}. Install python3 with pip (`cargo xtask ci` installs \
                 python3-pip) and let pip reach PyPI, or put {MOTO_PY}, {BOTO3_PY} and \
                 {BOTOCORE_PY} in {}",
                tmp().join("moto-python").display()
            )
        });
        // From the workspace's root, the first ancestor of the including package's
        // directory that holds it, so that other crates' tests and the benches can use this
        // module.
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|d| d.join("crates/fdr-sentinel/tests/s3/moto_server.py"))
            .find(|p| p.exists())
            .expect("moto_server.py, in crates/fdr-sentinel/tests/s3 of the workspace");
        let log = std::fs::File::create(tmp().join(format!("moto-{}.log", std::process::id())))
            .expect("moto's log file");
        let mut command = Command::new("python3");
        command.arg(&script);
        if let Some((cert, key, ca)) = &tls {
            command.args([cert, key, ca]);
        }
        let mut child = command
            .env("PYTHONPATH", site)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting moto");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut moto = Moto {
            child,
            stdin,
            stdout,
            port: 0,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            ca_file: tls.map(|(_, _, ca)| ca),
        };
        let hello = moto.read_line(Duration::from_secs(120));
        moto.port = hello["port"].as_u64().expect("moto's port") as u16;
        moto.access_key_id = hello["access_key_id"].as_str().unwrap().to_owned();
        moto.secret_access_key = hello["secret_access_key"].as_str().unwrap().to_owned();
        moto
    }

    /// Reads the server's next JSON line, waiting at most `limit`.
    fn read_line(&mut self, limit: Duration) -> serde_json::Value {
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            let stdout = &mut self.stdout;
            s.spawn(move || {
                let mut line = String::new();
                let _ = stdout.read_line(&mut line);
                let _ = tx.send(line);
            });
            match rx.recv_timeout(limit) {
                Ok(line) if !line.is_empty() => serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("moto said {line:?}: {e}")),
                Ok(_) => panic!(
                    "moto exited; see {}",
                    tmp()
                        .join(format!("moto-{}.log", std::process::id()))
                        .display()
                ),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("moto did not answer within {limit:?}")
                }
            }
        })
    }

    fn command(&mut self, line: &str) -> serde_json::Value {
        let stdin = self.stdin.as_mut().expect("moto is stopped");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let answer = self.read_line(Duration::from_secs(60));
        assert!(answer.get("error").is_none(), "moto: {line}: {answer}");
        answer
    }

    /// `http://127.0.0.1:PORT`, or `https://` over TLS.
    pub fn endpoint(&self) -> String {
        let scheme = if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A store's configuration for `bucket` and `prefix` here (this server, its key, its CA),
    /// with a fresh spool directory.
    pub fn config(&self, bucket: &str, prefix: &str) -> BucketConfig {
        let spool_dir = tmp().join(format!("spool-{bucket}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&spool_dir);
        let mut options = vec![
            ("aws_endpoint".to_owned(), self.endpoint()),
            ("aws_region".to_owned(), "us-east-1".to_owned()),
            ("aws_access_key_id".to_owned(), self.access_key_id.clone()),
            (
                "aws_secret_access_key".to_owned(),
                self.secret_access_key.clone(),
            ),
        ];
        if self.ca_file.is_none() {
            options.push(("aws_allow_http".to_owned(), "true".to_owned()));
        }
        BucketConfig {
            url: format!("s3://{bucket}/{prefix}"),
            options,
            root_certificates: self.ca_file.clone(),
            retention: Retention::default(),
            timeout: Duration::from_secs(20),
            spool_dir,
            ..BucketConfig::default()
        }
    }

    /// The environment that points the `fdr` command's S3 store here (plain HTTP): the
    /// endpoint, a region and this server's key. The secret is last.
    pub fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ]
    }

    /// Replaces the option `key` of `config` (or adds it).
    pub fn with_option(mut config: BucketConfig, key: &str, value: &str) -> BucketConfig {
        config.options.retain(|(k, _)| k != key);
        config.options.push((key.to_owned(), value.to_owned()));
        config
    }

    /// Creates `bucket` with boto3.
    pub fn mkbucket(&mut self, bucket: &str) {
        self.command(&format!("mkbucket {bucket}"));
    }

    /// Multipart uploads begun in `bucket` and neither completed nor aborted.
    pub fn open_uploads(&mut self, bucket: &str) -> u64 {
        self.command(&format!("uploads {bucket}"))["uploads"]
            .as_u64()
            .unwrap()
    }

    /// Every object in `bucket`, sorted, as boto3 lists them.
    pub fn keys(&mut self, bucket: &str) -> Vec<(String, u64)> {
        let answer = self.command(&format!("keys {bucket}"));
        let mut keys: Vec<(String, u64)> = answer["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k[0].as_str().unwrap().to_owned(), k[1].as_u64().unwrap()))
            .collect();
        keys.sort();
        keys
    }

    /// Writes an object with boto3.
    pub fn put(&mut self, bucket: &str, key: &str, data: &[u8]) {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        self.command(&format!("put {bucket} {key} {hex}"));
    }

    /// A new access key, allowed what the IAM `policy` (JSON) says: `(id, secret)`.
    pub fn user(&mut self, policy: &serde_json::Value) -> (String, String) {
        let hex: String = policy
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let answer = self.command(&format!("user {hex}"));
        let field = |k: &str| answer[k].as_str().unwrap().to_owned();
        (field("access_key_id"), field("secret_access_key"))
    }

    /// Stops the server (its port then refuses connections).
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
