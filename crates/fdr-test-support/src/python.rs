//! The pinned Python packages the tests read fdr's output with, in one place: each test
//! installs its set into its `CARGO_TARGET_TMPDIR` on first use ([`PythonPackages::site_in`]),
//! and `cargo xtask ci` installs them all there while it builds, so that the tests find
//! them in place instead of waiting on PyPI.

use crate::tools::PythonPackages;

/// Perfetto's Python package (its generated trace classes).
pub const PERFETTO_PY: &str = "perfetto==0.59.1";
/// The protobuf runtime Perfetto's classes need.
pub const PROTOBUF_PY: &str = "protobuf==6.33.6";
/// DuckDB, which reads the Parquet tables.
pub const DUCKDB_PY: &str = "duckdb==2.0.1";
/// protoc (in grpcio-tools) and the protobuf runtime it pulls in.
pub const GRPCIO_TOOLS_PY: &str = "grpcio-tools==1.85.1";
/// moto's S3 server.
pub const MOTO_PY: &str = "moto[server]==5.2.5";
/// The AWS SDK moto checks signatures with.
pub const BOTO3_PY: &str = "boto3==1.44.8";
/// boto3's core, pinned with it.
pub const BOTOCORE_PY: &str = "botocore==1.44.8";

/// Perfetto's generated protobuf classes and the protobuf runtime (the Perfetto export's
/// independent decoder).
pub const PERFETTO: PythonPackages<'static> = PythonPackages {
    dir_name: "perfetto-python",
    requirements: &[PERFETTO_PY, PROTOBUF_PY],
    check: "import perfetto.protos.perfetto.trace.perfetto_trace_pb2",
};

/// DuckDB (the Parquet tables' independent reader).
pub const DUCKDB: PythonPackages<'static> = PythonPackages {
    dir_name: "duckdb-python",
    requirements: &[DUCKDB_PY],
    check: "import duckdb; assert duckdb.__version__ == '2.0.1', duckdb.__version__",
};

/// protoc, which generates the published `profile.proto`'s classes (the pprof profiles'
/// independent decoder).
pub const PPROF: PythonPackages<'static> = PythonPackages {
    dir_name: "pprof-python",
    requirements: &[GRPCIO_TOOLS_PY],
    check: "import grpc_tools.protoc",
};

/// moto's server and the AWS SDK it checks signatures with (the S3 stores' server).
pub const MOTO: PythonPackages<'static> = PythonPackages {
    dir_name: "moto-python",
    requirements: &[MOTO_PY, BOTO3_PY, BOTOCORE_PY],
    // The pinned versions, not others on the machine's own path.
    check: "import moto.server, boto3, botocore\n\
            assert (moto.__version__, boto3.__version__, botocore.__version__) \
            == ('5.2.5', '1.44.8', '1.44.8')",
};

/// Every set the tests install.
pub const ALL: [PythonPackages<'static>; 4] = [PERFETTO, DUCKDB, PPROF, MOTO];
