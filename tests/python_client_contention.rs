//! This SDK and Prefect's own Python client (`prefect.concurrency.asyncio.concurrency`, the
//! pinned Prefect in the harness's venv) contend for the same global limit on one real server:
//! the limit holds across both, both finish every acquisition, nothing is left held.

mod common;

use std::time::{Duration, Instant};

use common::{PeakPoller, active_slots, client, new_global_limit};

const LIMIT: i64 = 2;
const PYTHON_TASKS: usize = 4;
const PYTHON_ACQUISITIONS: usize = 8;
const RUST_TASKS: usize = 8;
const RUST_EACH: usize = 4;

#[tokio::test]
async fn the_sdk_and_prefects_python_client_share_a_limit_without_exceeding_it() {
    let client = client().await;
    let name = new_global_limit(&client, "with-python", LIMIT).await;

    let poller = PeakPoller::start(&client, &name, Duration::from_millis(10));

    let venv = tokio::task::spawn_blocking(prefect_testkit::ensure_venv)
        .await
        .unwrap()
        .unwrap();
    let python_home = tempfile::tempdir().unwrap();
    let python = tokio::process::Command::new(venv.join("bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/python/contention.py"
        ))
        .args([
            &name,
            &PYTHON_TASKS.to_string(),
            &PYTHON_ACQUISITIONS.to_string(),
            "0.05",
        ])
        .env("PREFECT_API_URL", client.api_url())
        .env("PREFECT_HOME", python_home.path())
        .kill_on_drop(true)
        .output();

    let started = Instant::now();
    let rust = async {
        // Start once Prefect's client holds a slot (its imports take seconds), so they contend.
        while poller.peak() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the Python client never took a slot"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rust_started = Instant::now();
        let tasks: Vec<_> = (0..RUST_TASKS)
            .map(|_| {
                let (client, name) = (client.clone(), name.clone());
                tokio::spawn(async move {
                    for _ in 0..RUST_EACH {
                        client
                            .concurrency([name.as_str()])
                            .timeout(Duration::from_secs(120))
                            // The hold starts once the slot is held.
                            .hold(async { tokio::time::sleep(Duration::from_millis(50)).await })
                            .await
                            .expect("the SDK's acquisition");
                    }
                    RUST_EACH
                })
            })
            .collect();
        let mut acquired = 0;
        for task in tasks {
            acquired += task.await.unwrap();
        }
        (acquired, rust_started.elapsed())
    };
    let (python, (rust_acquired, rust_took)) = tokio::join!(python, rust);
    let python = python.unwrap();
    let peak = poller.stop().await;

    assert!(
        python.status.success(),
        "Prefect's Python client failed:\n{}",
        String::from_utf8_lossy(&python.stderr)
    );
    // Its last line: acquisitions made, requests, CPU, RSS.
    let python_done: usize = String::from_utf8_lossy(&python.stdout)
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("the Python script's report");
    assert_eq!(python_done, PYTHON_ACQUISITIONS, "every Python acquisition done");
    assert_eq!(rust_acquired, RUST_TASKS * RUST_EACH);
    assert!(
        peak <= LIMIT,
        "peak active_slots {peak} over the limit of {LIMIT}"
    );
    assert!(peak >= 1, "the poller saw slots in use");
    let left = active_slots(&client, &name).await;
    assert_eq!(left, 0, "slots left held after both clients finished");
    eprintln!(
        "SDK: {rust_acquired} acquisitions in {rust_took:?}; Python: {PYTHON_ACQUISITIONS} in {:?}; peak {peak}",
        started.elapsed()
    );
}
