//! Object storage for evidence files: one interface ([`ObjectStore`]), a local directory as the
//! embedded default ([`LocalStore`]) and any S3-compatible service through presigned requests
//! ([`S3Store`], rusty-s3 + reqwest).
//!
//! Keys are [`ObjectKey`]s: built by the platform from ids it generated (never from a client's file
//! name), and checked again here — lower-case ASCII letters, digits, `.`, `_`, `-` in `/`-separated
//! segments, no empty, `.` or `..` segment — so no key can leave the store's root.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::InfraError;

/// A checked object key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Checks `raw`: 1–512 characters of `[a-z0-9._-]` in `/`-separated segments, none empty, `.`
    /// or `..`.
    pub fn parse(raw: &str) -> Result<Self, InfraError> {
        let bad = |why: &str| InfraError::Storage(format!("object key {raw:?}: {why}"));
        if raw.is_empty() || raw.len() > 512 {
            return Err(bad("1–512 characters"));
        }
        for segment in raw.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(bad("an empty, `.` or `..` segment"));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            {
                return Err(bad("only a-z, 0-9, `.`, `_`, `-` and `/`"));
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where evidence files are kept.
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// `local` or `s3`, for logs and metadata.
    fn kind(&self) -> &'static str;
    /// Stores `bytes` under `key` (replacing what was there).
    fn put<'a>(
        &'a self,
        key: &'a ObjectKey,
        bytes: Bytes,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), InfraError>>;
    /// The object under `key`, if there is one.
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<Bytes>, InfraError>>;
}

/// Files under a local directory (the embedded default, `BW_STORAGE_DIR`).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created when first written to).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        // Safe by construction: every segment is a plain name (see `ObjectKey::parse`).
        key.as_str()
            .split('/')
            .fold(self.root.clone(), |path, segment| path.join(segment))
    }
}

impl ObjectStore for LocalStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn put<'a>(
        &'a self,
        key: &'a ObjectKey,
        bytes: Bytes,
        _content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), InfraError>> {
        Box::pin(async move {
            let path = self.path(key);
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            // Written whole to a temporary name, then renamed: a reader never sees half a file.
            let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&partial, &bytes).await?;
            tokio::fs::rename(&partial, &path).await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<Bytes>, InfraError>> {
        Box::pin(async move {
            match tokio::fs::read(self.path(key)).await {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// An S3-compatible bucket, reached with presigned requests (`BW_S3_*`).
#[derive(Debug, Clone)]
pub struct S3Store {
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    http: reqwest::Client,
}

/// How long a presigned request stays valid (it is used at once).
const PRESIGN_FOR: Duration = Duration::from_secs(60);

impl S3Store {
    /// A store for `bucket` at `endpoint` (path-style URLs, as most self-hosted servers want).
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
        timeout: Duration,
    ) -> Result<Self, InfraError> {
        let config = |message: String| InfraError::Config {
            variable: "BW_S3_ENDPOINT",
            message,
        };
        let endpoint = endpoint
            .parse()
            .map_err(|e| config(format!("not a URL: {e}")))?;
        let bucket = rusty_s3::Bucket::new(
            endpoint,
            rusty_s3::UrlStyle::Path,
            bucket.to_owned(),
            region.to_owned(),
        )
        .map_err(|e| config(format!("bucket: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| config(e.to_string()))?;
        Ok(Self {
            bucket,
            credentials: rusty_s3::Credentials::new(access_key, secret_key),
            http,
        })
    }

    /// Creates the bucket if it does not exist yet.
    pub async fn ensure_bucket(&self) -> Result<(), InfraError> {
        use rusty_s3::S3Action as _;
        let url = self
            .bucket
            .create_bucket(&self.credentials)
            .sign(PRESIGN_FOR);
        let response = self
            .http
            .put(url)
            .send()
            .await
            .map_err(|e| InfraError::Storage(format!("create bucket: {e}")))?;
        // 409: it exists (BucketAlreadyOwnedByYou / BucketAlreadyExists).
        if response.status().is_success() || response.status() == reqwest::StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(InfraError::Storage(format!(
                "create bucket: HTTP {}",
                response.status()
            )))
        }
    }
}

impl ObjectStore for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn put<'a>(
        &'a self,
        key: &'a ObjectKey,
        bytes: Bytes,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), InfraError>> {
        Box::pin(async move {
            use rusty_s3::S3Action as _;
            let url = self
                .bucket
                .put_object(Some(&self.credentials), key.as_str())
                .sign(PRESIGN_FOR);
            let response = self
                .http
                .put(url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes)
                .send()
                .await
                .map_err(|e| InfraError::Storage(format!("put {key}: {e}")))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(InfraError::Storage(format!(
                    "put {key}: HTTP {}",
                    response.status()
                )))
            }
        })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<Bytes>, InfraError>> {
        Box::pin(async move {
            use rusty_s3::S3Action as _;
            let url = self
                .bucket
                .get_object(Some(&self.credentials), key.as_str())
                .sign(PRESIGN_FOR);
            let response = self
                .http
                .get(url)
                .send()
                .await
                .map_err(|e| InfraError::Storage(format!("get {key}: {e}")))?;
            match response.status() {
                s if s.is_success() => {
                    Ok(Some(response.bytes().await.map_err(|e| {
                        InfraError::Storage(format!("get {key}: {e}"))
                    })?))
                }
                reqwest::StatusCode::NOT_FOUND => Ok(None),
                s => Err(InfraError::Storage(format!("get {key}: HTTP {s}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_leave_the_root_or_carry_odd_characters() {
        for bad in [
            "",
            "../etc/passwd",
            "evidence/../../x",
            "/absolute",
            "a//b",
            "a/./b",
            "Upper/case",
            "spa ce",
            "back\\slash",
            "nul\0",
            "ünicode",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::parse(&"a".repeat(513)).is_err());
        let ok = ObjectKey::parse("evidence/0195d0b4/0.jpg").expect("ok");
        assert_eq!(ok.as_str(), "evidence/0195d0b4/0.jpg");
    }

    #[tokio::test]
    async fn the_local_store_round_trips_and_misses_cleanly() {
        let root = std::env::temp_dir().join(format!("bw-store-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalStore::new(&root);
        let key = ObjectKey::parse("evidence/m1/e1/0.jpg").expect("key");
        store
            .put(&key, Bytes::from_static(b"\xff\xd8\xffjpeg"), "image/jpeg")
            .await
            .expect("put");
        assert_eq!(
            store.get(&key).await.expect("get").as_deref(),
            Some(&b"\xff\xd8\xffjpeg"[..])
        );
        let missing = ObjectKey::parse("evidence/m1/e1/1.jpg").expect("key");
        assert_eq!(store.get(&missing).await.expect("get"), None);
        assert!(root.join("evidence/m1/e1/0.jpg").is_file());
        let leftovers = std::fs::read_dir(root.join("evidence/m1/e1"))
            .expect("dir")
            .count();
        assert_eq!(leftovers, 1, "no partial files remain");
        std::fs::remove_dir_all(root).expect("clean up");
    }
}
