//! Global limits (v2) and slot guards against a real Prefect server.
//!
//! The server runs its lease repossessor every second, so an expired lease frees its slots
//! within the shortest lease the server grants (60 s) plus about a second.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{
    PeakPoller, active_slots, bare_lease, client_of_own_server, guard_with_lease, new_global_limit,
    release_and_expect_free, renew_through, unique, wait_until_slots,
};
use futures_util::TryStreamExt;
use prefect_client::lease::SlotMode;
use prefect_client::{Client, Error};
use prefect_client::{OptionalExt, types};
use prefect_testkit::LocalServer;
use tokio::sync::OnceCell;

static SERVER: OnceCell<LocalServer> = OnceCell::const_new();
const LEASE: Duration = Duration::from_secs(60);

/// A client of this binary's own server, whose repossessor frees expired leases every second.
async fn client() -> Client {
    client_of_own_server(&SERVER, "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "1").await
}

/// Polls until the limit's active slots equal `expected`, or panics after `within`; returns
/// how long that took.
async fn wait_for_slots(client: &Client, name: &str, expected: i64, within: Duration) -> Duration {
    let started = Instant::now();
    let now = wait_until_slots(client, name, expected, within).await;
    assert_eq!(
        now, expected,
        "{name}: active_slots {now}, expected {expected} within {within:?}"
    );
    started.elapsed()
}

/// A rate-limit call on the limit `name` that must fail: its error.
async fn rate_limit_refused(client: &Client, name: &str) -> Error {
    client.concurrency([name]).rate_limit().await.unwrap_err()
}

/// Takes `slots` slots of the limit `name` at once.
async fn hold_slots(client: &Client, name: &str, slots: u32) -> prefect_client::concurrency::SlotGuard {
    client.concurrency([name]).slots(slots).acquire().await.unwrap()
}

/// An acquisition of the limit `name` that is not retried and must fail: its error.
async fn refused_at_once(client: &Client, name: &str) -> Error {
    client
        .concurrency([name])
        .max_retries(0)
        .acquire()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn every_global_limit_operation() {
    let client = client().await;
    let limits = client.global_concurrency_limits();
    let name = unique("gcl");
    let created = limits.create(&name, 2).send().await.unwrap();
    assert_eq!(created.limit, 2);
    assert!(limits.create(&name, 2).send().await.unwrap_err().is_conflict());
    assert_eq!(limits.get_by_name(&name).await.unwrap().id, created.id);
    assert_eq!(limits.get(created.id).await.unwrap().name, name);
    assert!(
        limits
            .get_by_name("no-such-limit")
            .await
            .optional()
            .unwrap()
            .is_none()
    );

    limits.update_by_name(&name).limit(3).send().await.unwrap();
    assert_eq!(limits.get_by_name(&name).await.unwrap().limit, 3);
    limits.update(created.id).active(true).send().await.unwrap();
    let all: Vec<_> = limits.stream(Default::default()).try_collect().await.unwrap();
    assert!(all.iter().any(|l| l.id == created.id));
    let one = types::ReadAllConcurrencyLimitsV2Body {
        limit: Some(1),
        offset: 0,
    };
    assert_eq!(limits.list_page(&one).await.unwrap().len(), 1);

    limits
        .increment(&[&name], 2, SlotMode::Concurrency)
        .await
        .unwrap();
    assert_eq!(active_slots(&client, &name).await, 2);
    limits
        .decrement(&[&name], 2, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(active_slots(&client, &name).await, 0);

    let lease = bare_lease(&client, &name, LEASE).await;
    assert_eq!(lease.limits[0].name, name);
    assert_eq!(active_slots(&client, &name).await, 1);
    limits.renew_lease(lease.lease_id, LEASE).await.unwrap();
    limits.decrement_with_lease(lease.lease_id).await.unwrap();
    assert_eq!(active_slots(&client, &name).await, 0);
    let err = limits.renew_lease(lease.lease_id, LEASE).await.unwrap_err();
    assert!(err.is_lease_lost(), "renewing a released lease: {err:?}");

    limits.delete_by_name(&name).await.unwrap();
    assert!(limits.get_by_name(&name).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn guard_release_and_drop_give_slots_back() {
    let client = client().await;
    let name = new_global_limit(&client, "drop", 2).await;
    let guard = client.concurrency([name.as_str()]).acquire().await.unwrap();
    assert!(guard.lease_id().is_some());
    assert_eq!(guard.limits()[0].limit, 2);
    assert_eq!(active_slots(&client, &name).await, 1);
    release_and_expect_free(&client, guard, &name).await;

    let guard = hold_slots(&client, &name, 2).await;
    assert_eq!(active_slots(&client, &name).await, 2);
    drop(guard);
    wait_for_slots(&client, &name, 0, Duration::from_secs(5)).await;

    // Early return through `?` drops the guard too.
    async fn early(client: &Client, name: &str) -> Result<(), Error> {
        let _guard = client.concurrency([name]).acquire().await?;
        Err(Error::InvalidInput {
            what: "test",
            message: "failed on purpose".into(),
        })
    }
    assert!(early(&client, &name).await.is_err());
    wait_for_slots(&client, &name, 0, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn panic_inside_the_scope_releases() {
    let client = client().await;
    let name = new_global_limit(&client, "panic", 1).await;
    let (c, n) = (client.clone(), name.clone());
    let task = tokio::spawn(async move {
        c.concurrency([n.as_str()])
            .hold(async { panic!("work failed") })
            .await
    });
    assert!(task.await.unwrap_err().is_panic());
    wait_for_slots(&client, &name, 0, Duration::from_secs(5)).await;
    // The slot is usable again.
    let value = client
        .concurrency([name.as_str()])
        .timeout(Duration::from_secs(5))
        .hold(async { 7 })
        .await
        .unwrap();
    assert_eq!(value, 7);
}

#[tokio::test]
async fn cancelled_acquisitions_leak_no_lease() {
    let client = client().await;
    let name = new_global_limit(&client, "cancel", 3).await;
    // Cancel acquisitions at every point: before, during and after the server's answer.
    for i in 0..30u64 {
        let (c, n) = (client.clone(), name.clone());
        let task = tokio::spawn(async move { c.concurrency([n.as_str()]).acquire().await.map(drop) });
        tokio::time::sleep(Duration::from_micros(500 * (i % 15))).await;
        task.abort();
        let _ = task.await;
    }
    // A timeout is a cancellation too: hold every slot, then time out waiting for one more.
    let held = hold_slots(&client, &name, 3).await;
    let started = Instant::now();
    let err = client
        .concurrency([name.as_str()])
        .timeout(Duration::from_millis(500))
        .acquire()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AcquireTimeout { .. }), "{err:?}");
    assert!(err.is_timeout());
    assert!(started.elapsed() < Duration::from_secs(3));
    held.release().await.unwrap();
    wait_for_slots(&client, &name, 0, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn missing_limits_are_an_error_by_default_and_lenient_on_request() {
    let client = client().await;
    let missing = unique("missing");
    // Strict by default: a typo never silently limits nothing.
    let err = client
        .concurrency([missing.as_str()])
        .acquire()
        .await
        .unwrap_err();
    let Error::MissingLimits { names } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(names, std::slice::from_ref(&missing));
    assert!(err.to_string().contains("create it"), "{err}");
    let err = rate_limit_refused(&client, &missing).await;
    assert!(err.is_missing_limits(), "rate limits too: {err:?}");

    // Lenient (Prefect's default): nothing limits the caller, and the guard says so.
    let guard = client
        .concurrency([missing.as_str()])
        .strict(false)
        .acquire()
        .await
        .unwrap();
    assert!(guard.is_unlimited() && guard.lease_id().is_none() && guard.limits().is_empty());
    guard.release().await.unwrap();
    client
        .concurrency([missing.as_str()])
        .strict(false)
        .rate_limit()
        .await
        .unwrap();

    // One existing, one missing: the default fails and holds nothing; lenient limits by the
    // existing one only.
    let existing = new_global_limit(&client, "exists", 1).await;
    let both = [existing.as_str(), missing.as_str()];
    let err = client.concurrency(both).acquire().await.unwrap_err();
    assert!(err.is_missing_limits());
    assert_eq!(active_slots(&client, &existing).await, 0);
    let guard = client.concurrency(both).strict(false).acquire().await.unwrap();
    assert!(!guard.is_unlimited());
    assert_eq!(guard.limits().len(), 1);
    assert_eq!(active_slots(&client, &existing).await, 1);
    release_and_expect_free(&client, guard, &existing).await;
}

#[tokio::test]
async fn refusals_can_be_bounded_by_max_retries() {
    let client = client().await;
    let name = new_global_limit(&client, "retries", 1).await;
    let other = Client::new(client.api_url()).unwrap(); // another "process": no local hand-off
    let held = other.concurrency([name.as_str()]).acquire().await.unwrap();
    let err = refused_at_once(&client, &name).await;
    assert!(err.is_slots_unavailable(), "{err:?}");
    assert!(err.retry_after().is_some(), "the server's Retry-After is kept");
    held.release().await.unwrap();
}

#[tokio::test]
async fn contention_in_one_client_never_exceeds_the_limit() {
    let client = client().await;
    let name = new_global_limit(&client, "contend", 2).await;
    let inside = Arc::new(AtomicI64::new(0));
    let peak = Arc::new(AtomicI64::new(0));
    let before = client.requests_sent();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (client, name, inside, peak) = (client.clone(), name.clone(), inside.clone(), peak.clone());
            tokio::spawn(async move {
                for _ in 0..4 {
                    client
                        .concurrency([name.as_str()])
                        .hold(async {
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            inside.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    // Not `== 2`: on a server slowed by the other tests, every acquisition may pass along the
    // first lease (no request) before the second ask is answered; its grant is then handed on
    // or given back, never held beside the limit.
    assert!(peak.load(Ordering::SeqCst) >= 1, "the work ran under the guard");
    let requests = client.requests_sent() - before;
    assert!(
        requests < 48 * 2,
        "local hand-off saves requests: {requests} for 48 acquisitions"
    );
    wait_for_slots(&client, &name, 0, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn two_processes_never_exceed_the_limit() {
    let client = client().await;
    let name = new_global_limit(&client, "procs", 2).await;
    let poller = PeakPoller::start(&client, &name, Duration::from_millis(5));
    let worker = prefect_testkit::worker_binary().unwrap();
    // Each: 8 tasks × 4 holds of 30 ms.
    let children: Vec<_> = (0..2)
        .map(|_| {
            tokio::process::Command::new(&worker)
                .args(["contend", client.api_url(), &name])
                .args(["--tasks", "8", "--each", "4", "--hold-ms", "30"])
                .output()
        })
        .collect();
    let mut logs = String::new();
    for child in children {
        let out = child.await.unwrap();
        logs.push_str(&String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ACQUISITIONS 32"),
            "the worker made its 32 acquisitions"
        );
    }
    let peak = poller.stop().await;
    assert!(peak <= 2, "peak active_slots {peak} over the limit");
    assert!(peak >= 1, "the poller saw the slots in use");
    let left = wait_until_slots(&client, &name, 0, Duration::from_secs(5)).await;
    assert_eq!(
        left, 0,
        "slots left after both workers finished; their output:\n{logs}"
    );
}

#[tokio::test]
async fn a_process_that_holds_every_slot_lets_a_newcomer_in() {
    let client = client().await;
    let name = new_global_limit(&client, "newcomer", 2).await;
    let worker = prefect_testkit::worker_binary().unwrap();
    // 8 tasks that want both slots for about 48 s: the worker never runs short of waiters.
    let mut holder = tokio::process::Command::new(&worker)
        .args(["contend", client.api_url(), &name])
        .args(["--tasks", "8", "--each", "400", "--hold-ms", "30"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until_slots(&client, &name, 2, Duration::from_secs(30)).await;
    // This process waits unseen: the holder is never refused, so only its probes let it in.
    let started = Instant::now();
    let got = client
        .concurrency([name.as_str()])
        // Its probes come every 4 s, each after a lease's term of about 2 s.
        .timeout(Duration::from_secs(10))
        .hold(async { started.elapsed() })
        .await;
    holder.kill().await.unwrap();
    let waited = got.expect("a newcomer gets a slot while the holder still wants both");
    eprintln!("the newcomer got a slot after {waited:?}");
}

#[tokio::test]
async fn rate_limits_pace_by_decay() {
    let client = client().await;
    let name = unique("rate");
    client
        .global_concurrency_limits()
        .create(&name, 2)
        .slot_decay_per_second(4.0)
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    for _ in 0..4 {
        client
            .concurrency([name.as_str()])
            .timeout(Duration::from_secs(20))
            .rate_limit()
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the third and fourth waited for decay"
    );

    // A limit without decay cannot rate-limit: the server's 422 comes back typed.
    let plain = new_global_limit(&client, "plain", 2).await;
    let err = rate_limit_refused(&client, &plain).await;
    assert!(err.is_validation(), "{err:?}");
}

#[tokio::test]
async fn lost_lease_is_reported_to_the_holder() {
    let client = client().await;
    let name = new_global_limit(&client, "lost", 1).await;
    let guard = guard_with_lease(&client, &name, LEASE).await;
    assert!(!guard.is_lost() && guard.check().is_ok());
    // Someone else ends the lease (as a replica without shared lease storage would forget it).
    let outsider = Client::new(client.api_url()).unwrap();
    outsider
        .global_concurrency_limits()
        .decrement_with_lease(guard.lease_id().unwrap())
        .await
        .unwrap();
    // The next renewal (a third of the lease) finds it gone.
    let lost = tokio::time::timeout(Duration::from_secs(40), guard.lost())
        .await
        .expect("loss reported");
    assert!(lost.is_lease_lost());
    assert!(lost.to_string().contains("410"), "{lost}");
    assert!(guard.is_lost());
    assert!(
        guard.release().await.unwrap_err().is_lease_lost(),
        "release reports the loss"
    );
}

#[tokio::test]
async fn renewal_keeps_a_lease_past_its_duration() {
    let client = client().await;
    let name = new_global_limit(&client, "renew", 1).await;
    let guard = guard_with_lease(&client, &name, LEASE).await;
    tokio::time::sleep(LEASE + Duration::from_secs(8)).await;
    assert!(!guard.is_lost(), "{:?}", guard.check());
    assert_eq!(
        active_slots(&client, &name).await,
        1,
        "still held past the lease duration"
    );
    // The server still knows the lease.
    renew_through(&client, &guard, LEASE).await;
    release_and_expect_free(&client, guard, &name).await;
}

#[tokio::test]
async fn an_unrenewed_lease_expires_and_its_slots_return() {
    let client = client().await;
    let name = new_global_limit(&client, "expire", 1).await;
    // As a killed process would: take the lease and never renew nor release it.
    bare_lease(&client, &name, LEASE).await;
    assert_eq!(active_slots(&client, &name).await, 1);
    let waited = wait_for_slots(&client, &name, 0, LEASE + Duration::from_secs(20)).await;
    assert!(
        waited >= LEASE - Duration::from_secs(2),
        "freed only once the lease expired ({waited:?})"
    );
}

#[tokio::test]
async fn slots_of_a_killed_process_come_back() {
    use tokio::io::AsyncBufReadExt;
    let client = client().await;
    let name = new_global_limit(&client, "killed", 1).await;
    let mut child = tokio::process::Command::new(prefect_testkit::worker_binary().unwrap())
        .args(["hold", client.api_url(), &name])
        .args(["--lease-secs", &LEASE.as_secs().to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let held = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("HOLDING") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(held, Ok(true), "the child took the slot");
    assert_eq!(active_slots(&client, &name).await, 1);
    child.kill().await.unwrap(); // SIGKILL: no release, no more renewals
    let started = Instant::now();
    let err = refused_at_once(&client, &name).await;
    assert!(
        err.is_slots_unavailable(),
        "still held right after the kill: {err:?}"
    );
    wait_for_slots(&client, &name, 0, LEASE + Duration::from_secs(20)).await;
    assert!(
        started.elapsed() >= LEASE - Duration::from_secs(25),
        "freed by lease expiry"
    );
    // And usable again.
    client
        .concurrency([name.as_str()])
        .timeout(Duration::from_secs(10))
        .hold(async {})
        .await
        .unwrap();
}
