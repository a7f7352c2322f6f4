//! Slot guards at the edges real programs hit, against a real Prefect server: programs that end
//! while holding slots (child processes observed from outside), releases cancelled at every
//! point, a renewing runtime that goes away, hand-offs only between equal acquisitions, and
//! work that outlives its lease.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{active_slots, client, create_global_limit, new_global_limit, server, unique, wait_until_slots};
use prefect_client::Client;
use prefect_client::error::LeaseLoss;

/// Runs the worker binary to end a program in the way `how` names while it holds `slots`
/// guards; returns its exit code and output.
async fn end_program(how: &str, name: &str, current_thread: bool) -> (Option<i32>, String, Duration) {
    let worker = prefect_testkit::worker_binary().expect("prefect-testkit-worker is built");
    let mut command = tokio::process::Command::new(worker);
    command
        .args([how, server().await.api_url(), name, "--tasks", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if current_thread {
        command.args(["--current-thread", "1"]);
    }
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the program ends in bounded time")
        .expect("the worker runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text, started.elapsed())
}

#[tokio::test]
async fn programs_that_end_holding_guards_leave_no_slot_taken() {
    let client = client().await;
    let cases = [
        ("end-ok", Some(0)),
        ("end-err", Some(1)),
        ("end-panic", Some(101)),
        ("end-detached", Some(0)),
    ];
    let mut runs = Vec::new();
    for (how, code) in cases {
        for current_thread in [false, true] {
            let name = unique(how);
            create_global_limit(&client, &name, 5).await;
            runs.push(async move {
                let (exit, output, took) = end_program(how, &name, current_thread).await;
                (how, current_thread, code, exit, output, took, name)
            });
        }
    }
    for (how, current_thread, code, exit, output, took, name) in futures_join(runs).await {
        let case = format!("{how} (current-thread: {current_thread})");
        assert!(output.contains("HOLDING"), "{case}: {output}");
        assert_eq!(exit, code, "{case}: {output}");
        // Read right after the exit: nothing is left to lease expiry.
        assert_eq!(active_slots(&client, &name).await, 0, "{case}: {output}");
        println!("{case}: exited in {:.2} s with no slot held", took.as_secs_f64());
    }
}

#[tokio::test]
async fn a_program_that_calls_exit_leaves_its_slots_to_lease_expiry() {
    // Documented: std::process::exit runs no destructors, so nothing can release.
    let client = client().await;
    let name = new_global_limit(&client, "end-exit", 5).await;
    let (exit, output, _) = end_program("end-exit", &name, false).await;
    assert_eq!(exit, Some(3), "{output}");
    assert_eq!(active_slots(&client, &name).await, 2);
}

/// The acquisition of the limit `name` by a new client of the server at `api_url`.
fn by_a_new_client(api_url: &str, name: &str) -> prefect_client::concurrency::Acquire {
    Client::new(api_url).unwrap().concurrency([name])
}

/// Runs `work` to its end on a current-thread runtime of its own, in a thread of its own, and
/// shuts that runtime down before returning the output.
fn on_a_runtime_of_its_own<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let output = runtime.block_on(work);
        drop(runtime);
        output
    })
    .join()
    .unwrap()
}

/// Awaits futures together (the test crate has no futures combinators).
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("no panic"));
    }
    outputs
}

#[tokio::test]
async fn a_release_cancelled_at_any_point_still_gives_the_slot_back() {
    let client = client().await;
    let name = new_global_limit(&client, "cancel-release", 1).await;
    let mut held_up = Vec::new();
    for round in 0..20u64 {
        let guard = client.concurrency([name.as_str()]).acquire().await.unwrap();
        // Cancel the release after 0 to ~5 ms: before, during and after its request.
        let cut = Duration::from_micros(250 * round);
        let _ = tokio::time::timeout(cut, guard.release()).await;
        // The next acquisition is not refused (no stranded lease) and not held up by a local
        // count left high (which waits 2 s before asking the server anyway). A round may be
        // slow when other tests load the server; a stranded count makes every round slow.
        let next = client
            .concurrency([name.as_str()])
            .timeout(Duration::from_millis(1900))
            .max_retries(0)
            .hold(async {})
            .await;
        match next {
            Ok(()) => {}
            Err(e) if e.is_timeout() => held_up.push(round),
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    assert!(held_up.len() <= 3, "held up in rounds {held_up:?}");
    assert_eq!(
        wait_until_slots(&client, &name, 0, Duration::from_secs(5)).await,
        0
    );
}

#[tokio::test]
async fn a_release_cancelled_while_handing_off_strands_nothing() {
    let client = client().await;
    let name = new_global_limit(&client, "cancel-handoff", 1).await;
    for round in 0..12u64 {
        let guard = client.concurrency([name.as_str()]).acquire().await.unwrap();
        let waiter = tokio::spawn({
            let client = client.clone();
            let name = name.clone();
            async move {
                client
                    .concurrency([name.as_str()])
                    .timeout(Duration::from_secs(10))
                    .acquire()
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = tokio::time::timeout(Duration::from_micros(200 * round), guard.release()).await;
        let next = waiter
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(!next.is_lost());
        assert_eq!(active_slots(&client, &name).await, 1, "round {round}");
        next.release().await.unwrap();
    }
    assert_eq!(active_slots(&client, &name).await, 0);
    // Nothing parked is left for a later waiter.
    client
        .concurrency([name.as_str()])
        .timeout(Duration::from_millis(1500))
        .max_retries(0)
        .hold(async {})
        .await
        .unwrap();
}

#[tokio::test]
async fn a_guard_whose_renewing_runtime_is_gone_reports_lost_and_still_releases() {
    let client = client().await;
    let name = new_global_limit(&client, "runtime-gone", 1).await;
    let (api_url, limit) = (client.api_url().to_string(), name.clone());
    // Acquire on a runtime of its own, which shuts down with the guard alive.
    let guard =
        on_a_runtime_of_its_own(async move { by_a_new_client(&api_url, &limit).acquire().await.unwrap() });
    assert!(guard.is_lost(), "nothing renews it any more");
    let err = guard.check().unwrap_err();
    assert!(
        matches!(
            &err,
            prefect_client::Error::LeaseLost {
                reason: LeaseLoss::RuntimeShutdown,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(active_slots(&client, &name).await, 1);
    // Dropped where no runtime runs, it still gives the slot back.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!(active_slots(&client, &name).await, 0);
}

/// Holds `guard`, starts a waiter built by `waiter`, releases the guard once the waiter queues,
/// and returns whether the waiter got the same lease (a local hand-off).
async fn handed_off(
    client: &Client,
    guard: prefect_client::concurrency::SlotGuard,
    waiter: prefect_client::concurrency::Acquire,
) -> bool {
    let given = guard.lease_id();
    let waiting = tokio::spawn(waiter.timeout(Duration::from_secs(20)).acquire());
    tokio::time::sleep(Duration::from_millis(300)).await;
    guard.release().await.unwrap();
    let next = waiting.await.unwrap().unwrap();
    let same = next.lease_id() == given;
    next.release().await.unwrap();
    let _ = client;
    same
}

#[tokio::test]
async fn leases_pass_only_to_waiters_the_server_would_grant_the_same() {
    let client = client().await;
    let name = new_global_limit(&client, "handoff", 1).await;
    let acquire = || client.concurrency([name.as_str()]);

    let guard = acquire().acquire().await.unwrap();
    assert!(
        handed_off(&client, guard, acquire()).await,
        "equal terms: handed on"
    );

    let guard = acquire().acquire().await.unwrap();
    let longer = acquire().lease_duration(Duration::from_secs(120));
    assert!(
        !handed_off(&client, guard, longer).await,
        "another lease duration"
    );

    let guard = acquire().acquire().await.unwrap();
    assert!(
        !handed_off(&client, guard, acquire().strict(false)).await,
        "another strictness"
    );

    // A lenient lease granted while one name had no limit does not hold a slot on it: a
    // waiter would be limited by it once it exists, so the lease is not handed on.
    let missing = unique("handoff-missing");
    let both = || {
        client
            .concurrency([name.as_str(), missing.as_str()])
            .strict(false)
    };
    let guard = both().acquire().await.unwrap();
    assert_eq!(guard.limits().len(), 1);
    assert!(!handed_off(&client, guard, both()).await, "a partial lease");
    assert_eq!(active_slots(&client, &name).await, 0);
}

#[tokio::test]
async fn run_never_returns_ok_after_the_lease_ran_out_during_the_work() {
    let client = client().await;
    let name = new_global_limit(&client, "overrun", 1).await;
    // Work that blocks its (current-thread) runtime past the lease's first term: the renewer
    // cannot run, so nobody learns of the loss until the work is done.
    let (api_url, limit) = (client.api_url().to_string(), name.clone());
    let result = on_a_runtime_of_its_own(async move {
        by_a_new_client(&api_url, &limit)
            .lease_duration(Duration::from_secs(60))
            .hold(async { std::thread::sleep(Duration::from_secs(62)) })
            .await
    });
    let err = result.expect_err("the lease ran out while the work ran");
    assert!(err.is_lease_lost(), "{err:?}");
    assert_eq!(
        wait_until_slots(&client, &name, 0, Duration::from_secs(30)).await,
        0
    );
}
