//! The sentinel's object stores (object_store 0.14: S3, GCS, Azure with their credential
//! chains, TLS settings and retries) served to DataFusion, which reads through object_store
//! 0.13, its own release line. Reads only: `get_opts` (whole objects, ranges, `HEAD`),
//! `get_ranges` and the listings are passed through; every write answers `NotSupported`,
//! since a query never writes to the bucket.
//!
//! The two releases share their types' shapes (paths, metadata, ranges, options); each value
//! is rebuilt field by field, and each error keeps its kind (`NotFound`, `PermissionDenied`,
//! ...) with the store's own error as its source, so a query fails naming what the bucket
//! said.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::object_store as df;
use fdr_sentinel::object_store as os;
use futures_util::stream::{BoxStream, StreamExt};

/// The store's name in DataFusion's errors.
const STORE: &str = "fdr bucket";

/// A read-only object_store 0.13 view of an object_store 0.14 store.
#[derive(Debug)]
pub(crate) struct Bridge {
    inner: Arc<dyn os::ObjectStore>,
}

impl Bridge {
    pub(crate) fn new(inner: Arc<dyn os::ObjectStore>) -> Bridge {
        Bridge { inner }
    }
}

impl fmt::Display for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE} ({})", self.inner)
    }
}

/// A 0.13 path as the 0.14 store's (both are `/`-separated, already encoded keys).
fn path_in(p: &df::path::Path) -> df::Result<os::path::Path> {
    os::path::Path::parse(p.as_ref()).map_err(|e| df::Error::Generic {
        store: STORE,
        source: Box::new(e),
    })
}

/// A 0.14 path as 0.13's.
fn path_out(p: &os::path::Path) -> df::Result<df::path::Path> {
    df::path::Path::parse(p.as_ref()).map_err(|source| df::Error::InvalidPath { source })
}

fn meta_out(m: os::ObjectMeta) -> df::Result<df::ObjectMeta> {
    Ok(df::ObjectMeta {
        location: path_out(&m.location)?,
        last_modified: m.last_modified,
        size: m.size,
        e_tag: m.e_tag,
        version: m.version,
    })
}

/// A 0.14 error as 0.13's, of the same kind, the original as its source.
fn err_out(e: os::Error) -> df::Error {
    match e {
        os::Error::NotFound { path, source } => df::Error::NotFound { path, source },
        os::Error::AlreadyExists { path, source } => df::Error::AlreadyExists { path, source },
        os::Error::Precondition { path, source } => df::Error::Precondition { path, source },
        os::Error::NotModified { path, source } => df::Error::NotModified { path, source },
        os::Error::PermissionDenied { path, source } => {
            df::Error::PermissionDenied { path, source }
        }
        os::Error::Unauthenticated { path, source } => df::Error::Unauthenticated { path, source },
        e => df::Error::Generic {
            store: STORE,
            source: Box::new(e),
        },
    }
}

fn range_in(r: df::GetRange) -> os::GetRange {
    match r {
        df::GetRange::Bounded(r) => os::GetRange::Bounded(r),
        df::GetRange::Offset(o) => os::GetRange::Offset(o),
        df::GetRange::Suffix(n) => os::GetRange::Suffix(n),
    }
}

fn read_only(what: &str) -> df::Error {
    df::Error::NotSupported {
        source: format!("{what}: a query only reads the bucket").into(),
    }
}

#[async_trait::async_trait]
impl df::ObjectStore for Bridge {
    async fn put_opts(
        &self,
        _location: &df::path::Path,
        _payload: df::PutPayload,
        _opts: df::PutOptions,
    ) -> df::Result<df::PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _location: &df::path::Path,
        _opts: df::PutMultipartOptions,
    ) -> df::Result<Box<dyn df::MultipartUpload>> {
        Err(read_only("multipart put"))
    }

    async fn get_opts(
        &self,
        location: &df::path::Path,
        options: df::GetOptions,
    ) -> df::Result<df::GetResult> {
        let o = os::GetOptions {
            if_match: options.if_match,
            if_none_match: options.if_none_match,
            if_modified_since: options.if_modified_since,
            if_unmodified_since: options.if_unmodified_since,
            range: options.range.map(range_in),
            version: options.version,
            head: options.head,
            ..Default::default()
        };
        let got = self
            .inner
            .get_opts(&path_in(location)?, o)
            .await
            .map_err(err_out)?;
        let meta = meta_out(got.meta.clone())?;
        let range = got.range.clone();
        let payload = got.into_stream().map(|r| r.map_err(err_out)).boxed();
        Ok(df::GetResult {
            payload: df::GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: df::Attributes::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &df::path::Path,
        ranges: &[Range<u64>],
    ) -> df::Result<Vec<Bytes>> {
        self.inner
            .get_ranges(&path_in(location)?, ranges)
            .await
            .map_err(err_out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, df::Result<df::path::Path>>,
    ) -> BoxStream<'static, df::Result<df::path::Path>> {
        locations
            .map(|l| l.and_then(|_| Err(read_only("delete"))))
            .boxed()
    }

    fn list(
        &self,
        prefix: Option<&df::path::Path>,
    ) -> BoxStream<'static, df::Result<df::ObjectMeta>> {
        let prefix = match prefix.map(path_in).transpose() {
            Ok(p) => p,
            Err(e) => return futures_util::stream::once(async { Err(e) }).boxed(),
        };
        self.inner
            .list(prefix.as_ref())
            .map(|m| m.map_err(err_out).and_then(meta_out))
            .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&df::path::Path>,
    ) -> df::Result<df::ListResult> {
        let prefix = prefix.map(path_in).transpose()?;
        let got = self
            .inner
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(err_out)?;
        Ok(df::ListResult {
            common_prefixes: got
                .common_prefixes
                .iter()
                .map(path_out)
                .collect::<df::Result<_>>()?,
            objects: got
                .objects
                .into_iter()
                .map(meta_out)
                .collect::<df::Result<_>>()?,
        })
    }

    async fn copy_opts(
        &self,
        _from: &df::path::Path,
        _to: &df::path::Path,
        _options: df::CopyOptions,
    ) -> df::Result<()> {
        Err(read_only("copy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use df::ObjectStore as _;
    use df::ObjectStoreExt as _;
    use os::ObjectStoreExt as _;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn bridged() -> Bridge {
        let store = os::memory::InMemory::new();
        block_on(async {
            for (k, v) in [
                ("t/polls/a.parquet", &b"0123456789"[..]),
                ("t/polls/b.parquet", b"abc"),
                ("t/dumps/a.parquet", b"xyz"),
            ] {
                store
                    .put(&os::path::Path::from(k), Bytes::from_static(v).into())
                    .await
                    .unwrap();
            }
        });
        Bridge::new(Arc::new(store))
    }

    #[test]
    fn reads_list_and_ranges_pass_through() {
        let b = bridged();
        block_on(async {
            let p = df::path::Path::from("t/polls/a.parquet");
            assert_eq!(b.head(&p).await.unwrap().size, 10);
            assert_eq!(&b.get_range(&p, 2..5).await.unwrap()[..], b"234");
            let got = b
                .get_opts(
                    &p,
                    df::GetOptions {
                        range: Some(df::GetRange::Suffix(3)),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(got.range, 7..10);
            assert_eq!(&got.bytes().await.unwrap()[..], b"789");
            let parts = b.get_ranges(&p, &[0..1, 8..10]).await.unwrap();
            assert_eq!(parts, [Bytes::from_static(b"0"), Bytes::from_static(b"89")]);

            let mut listed: Vec<(String, u64)> = b
                .list(Some(&df::path::Path::from("t/polls")))
                .map(|m| m.map(|m| (m.location.to_string(), m.size)))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<df::Result<_>>()
                .unwrap();
            listed.sort();
            assert_eq!(
                listed,
                [
                    ("t/polls/a.parquet".to_owned(), 10),
                    ("t/polls/b.parquet".to_owned(), 3)
                ]
            );
            let top = b
                .list_with_delimiter(Some(&df::path::Path::from("t")))
                .await
                .unwrap();
            let mut dirs: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
            dirs.sort();
            assert_eq!(dirs, ["t/dumps", "t/polls"]);
            assert!(top.objects.is_empty());
        });
    }

    #[test]
    fn errors_keep_their_kind_and_writes_are_refused() {
        let b = bridged();
        block_on(async {
            let missing = df::path::Path::from("t/polls/none.parquet");
            match b.head(&missing).await {
                Err(df::Error::NotFound { path, .. }) => assert!(path.contains("none.parquet")),
                other => panic!("expected NotFound, got {other:?}"),
            }
            let p = df::path::Path::from("t/polls/a.parquet");
            assert!(matches!(
                b.put(&p, Bytes::from_static(b"x").into()).await,
                Err(df::Error::NotSupported { .. })
            ));
            assert!(matches!(
                b.delete(&p).await,
                Err(df::Error::NotSupported { .. })
            ));
            assert!(matches!(
                b.copy(&p, &missing).await,
                Err(df::Error::NotSupported { .. })
            ));
            assert_eq!(b.head(&p).await.unwrap().size, 10, "still there");
        });
    }
}
