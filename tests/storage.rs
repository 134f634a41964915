//! The S3 object store against a real S3-compatible server (s3s-fs, built by `scripts/bw setup`):
//! presigned PUT and GET through rusty-s3 + reqwest, misses, and a wrong secret refused.

use std::time::Duration;

use bw_infra::storage::{ObjectKey, ObjectStore, S3Store};
use bytes::Bytes;

/// An s3s-fs process on a free port over a fresh directory, killed when dropped.
struct S3Server {
    child: tokio::process::Child,
    endpoint: String,
    root: std::path::PathBuf,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const ACCESS: &str = "bw-test-access";
const SECRET: &str = "bw-test-secret-0123456789";

async fn s3_server() -> S3Server {
    betterworld::install_crypto_provider();
    let bin = std::env::var("BW_S3S_FS_BIN").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/betterworld/tools/bin/s3s-fs")
    });
    let root = std::env::temp_dir().join(format!("bw-s3-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&root).expect("root");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = tokio::process::Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS, "--secret-key", SECRET])
        .arg(&root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (run `bash scripts/bw setup`)"));
    // Ready when it accepts connections (bounded; no fixed sleep).
    tokio::time::timeout(Duration::from_secs(20), async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("s3s-fs listens");
    S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        root,
    }
}

fn store(server: &S3Server, secret: &str) -> S3Store {
    S3Store::new(
        &server.endpoint,
        "us-east-1",
        "evidence",
        ACCESS,
        secret,
        Duration::from_secs(10),
    )
    .expect("store")
}

#[tokio::test]
async fn the_s3_store_round_trips_a_5_mb_file_through_presigned_requests() {
    let server = s3_server().await;
    let s3 = store(&server, SECRET);
    s3.ensure_bucket().await.expect("bucket");
    s3.ensure_bucket()
        .await
        .expect("an existing bucket is fine");
    let key = ObjectKey::parse("evidence/m1/e1/0.jpg").expect("key");
    let five_mb: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    s3.put(&key, Bytes::from(five_mb.clone()), "image/jpeg")
        .await
        .expect("put");
    let back = s3.get(&key).await.expect("get").expect("found");
    assert_eq!(back.len(), five_mb.len());
    assert!(back == five_mb, "the bytes come back unchanged");
    let missing = ObjectKey::parse("evidence/m1/e1/9.jpg").expect("key");
    assert_eq!(s3.get(&missing).await.expect("get"), None);
    assert_eq!(s3.kind(), "s3");

    // A wrong secret signs requests the server refuses.
    let forged = store(&server, "not-the-secret-at-all");
    let refused = forged
        .put(&key, Bytes::from_static(b"x"), "image/jpeg")
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("HTTP 403"), "{refused}");
}
