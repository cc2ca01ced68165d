//! A real S3-compatible server for the S3 store's tests: moto's server, on 127.0.0.1, with
//! AWS Signature Version 4 checked (`tests/s3/moto_server.py`).
//!
//! moto is installed with pip into this target directory on first use (pinned versions,
//! nothing outside `target/`). Without Python, pip or PyPI the tests fail, saying why: they
//! never pass without having run (`cargo xtask ci` installs python3-pip when missing).
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a test helper module")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use fdr_sentinel::{Retention, S3Config};
use fdr_test_support::tools::PythonPackages;

const MOTO_PY: &str = "moto[server]==5.2.5";
const BOTO3_PY: &str = "boto3==1.44.8";
const BOTOCORE_PY: &str = "botocore==1.44.8";

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// moto's server and the AWS SDK it checks signatures with, pinned.
const MOTO: PythonPackages<'static> = PythonPackages {
    dir_name: "moto-python",
    requirements: &[MOTO_PY, BOTO3_PY, BOTOCORE_PY],
    // The pinned versions, not others on the machine's own path.
    check: "import moto.server, boto3, botocore\n\
            assert (moto.__version__, boto3.__version__, botocore.__version__) \
            == ('5.2.5', '1.44.8', '1.44.8')",
};

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
}

impl Moto {
    /// Starts a server; panics, saying why, when moto cannot be had.
    pub fn start() -> Moto {
        let site = site().unwrap_or_else(|why| {
            panic!(
                "the S3 store's tests run against moto's S3 server, which could not be \
                 installed: {why}. Install python3 with pip (`cargo xtask ci` installs \
                 python3-pip) and let pip reach PyPI, or put {MOTO_PY}, {BOTO3_PY} and \
                 {BOTOCORE_PY} in {}",
                tmp().join("moto-python").display()
            )
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/moto_server.py");
        let log = std::fs::File::create(tmp().join(format!("moto-{}.log", std::process::id())))
            .expect("moto's log file");
        let mut child = Command::new("python3")
            .arg(&script)
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

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A store's configuration for `bucket` and `prefix` here, with a fresh spool directory.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        let spool_dir = tmp().join(format!("spool-{bucket}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&spool_dir);
        S3Config {
            endpoint: self.endpoint(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            retention: Retention::default(),
            timeout: Duration::from_secs(20),
            spool_dir,
            ..S3Config::default()
        }
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
