//! The worker binary refuses what it cannot run, with its usage, before it sends anything.

use std::process::Command;

fn worker(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_prefect-testkit-worker"))
        .args(args)
        .output()
        .expect("the worker binary runs")
}

#[test]
fn unknown_commands_and_options_exit_2_with_the_usage() {
    for args in [
        &[][..],
        &["dance", "http://127.0.0.1:1/api", "db"][..],
        &["hold", "http://127.0.0.1:1/api", "db", "--speed", "3"][..],
        &["contend", "http://127.0.0.1:1/api", "db", "--tasks", "many"][..],
    ] {
        let out = worker(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("usage: prefect-testkit-worker"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn worker_binary_finds_the_built_worker() {
    // From target/<profile>/deps/, the worker built for this test is found in target/<profile>/.
    let found = prefect_testkit::worker_binary().expect("the worker is built beside the tests");
    assert_eq!(
        found.canonicalize().unwrap(),
        std::path::Path::new(env!("CARGO_BIN_EXE_prefect-testkit-worker"))
            .canonicalize()
            .unwrap()
    );
}

#[test]
fn a_url_that_is_not_one_fails_the_worker_with_the_sdks_message() {
    let out = worker(&["hold", "not a url", "db"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PREFECT_API_URL") || stderr.contains("URL"),
        "{stderr}"
    );
}
