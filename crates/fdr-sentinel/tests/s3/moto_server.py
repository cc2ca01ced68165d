"""moto's S3 server on 127.0.0.1 for fdr-sentinel's S3 tests, with SigV4 signatures checked.

Run by tests/common/moto.rs with moto (and boto3) on PYTHONPATH, as
`moto_server.py [CERT.pem KEY.pem CA.pem]`. It
- starts moto in this process on a free loopback port, over TLS with the given certificate
  and key when they are given (boto3 then trusts only CA.pem), with IAM authentication on: the
  first three actions (creating the test's user, its policy and its access key) go
  unchecked, and every request after them must carry a valid AWS Signature Version 4 of a
  known access key (moto recomputes it with botocore and answers 403 otherwise);
- prints one JSON line: {"port": P, "access_key_id": "...", "secret_access_key": "..."};
- then answers commands, one per line on stdin, with one JSON line each, through boto3
  (a client independent of the one under test):
    keys BUCKET          -> {"keys": [[key, size], ...]}   every object in the bucket
    put BUCKET KEY HEX   -> {"ok": true}                    writes an object
    mkbucket BUCKET      -> {"ok": true}                    creates a bucket
    uploads BUCKET       -> {"uploads": n}                  multipart uploads not completed
    user POLICY_HEX      -> {"access_key_id": ..., "secret_access_key": ...}
                            a new user's key, allowed what the IAM policy (JSON, in hex) says
- and exits when stdin closes: when the test drops its handle or its process ends.
"""

import json
import os
import ssl
import sys
import threading

# Read by moto.settings when it is imported.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ.pop(k, None)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402


def main() -> None:
    tls = None
    verify = None
    if len(sys.argv) == 4:
        cert, key, verify = sys.argv[1:]
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=tls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    scheme = "https" if tls else "http"
    endpoint = f"{scheme}://127.0.0.1:{port}"
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="unchecked",
        aws_secret_access_key="unchecked",
        verify=verify,
    )
    # The test's key may do anything (in S3, and in IAM to make other users).
    iam.create_user(UserName="fdr-tests")
    iam.put_user_policy(
        UserName="fdr-tests",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="fdr-tests")["AccessKey"]
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        verify=verify,
    )
    users = 0
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(s3={"addressing_style": "path"}),
        verify=verify,
    )
    say(
        {
            "port": port,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }
    )
    for line in sys.stdin:
        words = line.split()
        try:
            if words[0] == "keys":
                keys = []
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=words[1]):
                    keys += [[o["Key"], o["Size"]] for o in page.get("Contents", [])]
                say({"keys": keys})
            elif words[0] == "put":
                s3.put_object(Bucket=words[1], Key=words[2], Body=bytes.fromhex(words[3]))
                say({"ok": True})
            elif words[0] == "mkbucket":
                s3.create_bucket(Bucket=words[1])
                say({"ok": True})
            elif words[0] == "uploads":
                up = s3.list_multipart_uploads(Bucket=words[1]).get("Uploads", [])
                say({"uploads": len(up)})
            elif words[0] == "user":
                users += 1
                name = f"fdr-tests-{users}"
                iam.create_user(UserName=name)
                iam.put_user_policy(
                    UserName=name,
                    PolicyName="policy",
                    PolicyDocument=bytes.fromhex(words[1]).decode(),
                )
                k = iam.create_access_key(UserName=name)["AccessKey"]
                say(
                    {
                        "access_key_id": k["AccessKeyId"],
                        "secret_access_key": k["SecretAccessKey"],
                    }
                )
            else:
                say({"error": f"unknown command {words[0]!r}"})
        except Exception as e:  # answered, so the test fails with the reason
            say({"error": repr(e)})
    server.shutdown()


def say(v: object) -> None:
    sys.stdout.write(json.dumps(v) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
