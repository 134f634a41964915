//! `betterworld bench all --quick`: every benchmark runs briefly against the real PostgreSQL and
//! NATS, through the real binary and its roles, so the harness cannot rot. Its numbers are not
//! results (docs/benchmarks.md has those); what is checked is that every target and scenario
//! measured something and reported it in the table and the JSON.

mod support;

use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_betterworld");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_all_quick_measures_every_target_and_scenario() {
    // A database name of its own: the bench works in `<name>_benchq_*` and drops them at the end.
    let database = support::fresh_database().await;
    let dir = std::env::temp_dir().join(format!("bw-bench-{}", uuid::Uuid::new_v4().simple()));
    let json = dir.join("bench.json");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let output = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::process::Command::new(BIN)
            .args(["bench", "all", "--quick", "--json"])
            .arg(&json)
            .arg("--dir")
            .arg(&dir)
            .env("DATABASE_URL", &database)
            .env("NATS_URL", support::nats_url())
            .env("BW_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("bench all --quick finishes")
    .expect("bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // The table: a header, then one line per row, on stdout only (logs go to stderr).
    assert!(stdout.contains("QUICK"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).expect("the JSON report"))
        .expect("valid JSON");
    assert_eq!(report["quick"], true);
    let rows = report["rows"].as_array().expect("rows");
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    for id in [
        "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "S1", "S2", "S3", "S4", "S5", "S6", "S7",
        "X1", "X2", "X3",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    for row in rows {
        assert!(
            row["samples"].as_u64().unwrap_or(0) > 0 || row["figure"].as_f64().is_some(),
            "a row that measured nothing: {row}"
        );
        assert!(
            stdout.contains(row["what"].as_str().expect("what")),
            "{row} not in the table:\n{stdout}"
        );
        assert!(["pass", "fail", "info"].contains(&row["verdict"].as_str().expect("verdict")));
    }
    // P1 compares three contenders measured in the same run.
    let p1 = rows.iter().find(|r| r["id"] == "P1").expect("P1");
    assert!(p1["figure"].as_f64().expect("ratio") > 0.0, "{p1}");
    assert!(
        p1["reference"]
            .as_str()
            .expect("reference")
            .contains("library")
    );

    // Quick mode leaves no database behind.
    let admin = sqlx::PgPool::connect(&support::admin_url())
        .await
        .expect("admin");
    let name = database.rsplit('/').next().expect("name");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("{name}_benchq"))
            .fetch_one(&admin)
            .await
            .expect("count");
    assert_eq!(left, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
