//! Shared by the integration tests: one real Prefect server per test binary.

#![allow(dead_code)]

pub mod proxy;
pub mod serving;
pub mod stub;
pub mod tcp_proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use prefect_client::{Client, Error};
use prefect_testkit::LocalServer;
use tokio::sync::OnceCell;

static SERVER: OnceCell<LocalServer> = OnceCell::const_new();

/// The Prefect server of this test binary, started on first use (stopped when the binary exits).
/// Expired leases are freed within a second, so tests of lease expiry stay short.
///
/// `PREFECT_CLIENT_TEST_PREFECT_RELEASE` (e.g. `3.6.29`, with extra pip requirements in
/// `PREFECT_CLIENT_TEST_REQUIREMENTS`, space-separated) runs another Prefect release instead
/// of the pinned one: `scripts/compatibility-matrix.sh` uses it.
pub async fn server() -> &'static LocalServer {
    SERVER
        .get_or_init(|| async {
            let mut builder =
                LocalServer::builder().env("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "1");
            if let Ok(release) = std::env::var("PREFECT_CLIENT_TEST_PREFECT_RELEASE") {
                let requirements = std::env::var("PREFECT_CLIENT_TEST_REQUIREMENTS").unwrap_or_default();
                let requirements: Vec<&str> = requirements.split_whitespace().collect();
                builder = builder.prefect_release(&release, &requirements);
            }
            match builder.start().await {
                Ok(server) => server,
                Err(e) => panic!("cannot start the local Prefect server: {e}"),
            }
        })
        .await
}

/// A client of a server of this test binary's own, started in `cell` on first use with the
/// environment variable `name` set to `value`.
pub async fn client_of_own_server(cell: &'static OnceCell<LocalServer>, name: &str, value: &str) -> Client {
    let server = cell
        .get_or_init(|| async {
            LocalServer::builder()
                .env(name, value)
                .start()
                .await
                .unwrap_or_else(|e| panic!("cannot start the local Prefect server ({name}={value}): {e}"))
        })
        .await;
    server.client().unwrap()
}

/// A client of the shared server, patient with its 503s: many test binaries share a few CPUs
/// and one SQLite writer, whose lock waits can outlast the standard retries' 12.6 s.
pub async fn client() -> Client {
    let policy = prefect_client::RetryPolicy::standard().with_max_retries(8);
    Client::builder(server().await.api_url())
        .retry_policy(policy)
        .build()
        .expect("client for the local server")
}

/// A client builder for a free loopback port nothing listens on, retrying once.
pub fn unreachable_server() -> prefect_client::ClientBuilder {
    let port = prefect_testkit::free_port().unwrap();
    Client::builder(&format!("http://127.0.0.1:{port}/api")).max_retries(1)
}

/// Whether `result` failed because the server has no such thing (404); panics if it succeeded.
pub fn is_not_found<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    result.unwrap_err().is_not_found()
}

/// Whether `result` failed on the client's side, before anything was sent; panics if it succeeded.
pub fn is_client_side<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    result.unwrap_err().is_client_side()
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An event resource id no other test uses: `rust.test.<prefix>-<uuid>`.
pub fn unique_resource(prefix: &str) -> String {
    format!("rust.test.{}", unique(prefix))
}

/// The flow runs of the flow `name`.
pub fn runs_of_flow(name: &str) -> prefect_client::query::FlowRunQuery {
    use prefect_client::query::{FlowFilter, FlowFilterName, FlowRunQuery};
    FlowRunQuery {
        flows: Some(FlowFilter {
            name: Some(FlowFilterName {
                any: Some(vec![name.to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The flow runs of the deployment `id`.
pub fn runs_of_deployment(id: uuid::Uuid) -> prefect_client::query::FlowRunQuery {
    serde_json::from_value(serde_json::json!({ "deployments": { "id": { "any_": [id] } } })).unwrap()
}

/// The heartbeat events of the flow run `run` that occurred from `since` (until `until`), 50 a page.
pub fn heartbeats_of_run(
    run: uuid::Uuid,
    since: chrono::DateTime<chrono::Utc>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> prefect_client::query::EventQuery {
    use prefect_client::types::{EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter};
    prefect_client::query::EventQuery {
        filter: Some(EventFilter {
            event: Some(EventNameFilter {
                name: Some(vec!["prefect.flow-run.heartbeat".into()]),
                ..Default::default()
            }),
            resource: Some(EventResourceFilter {
                id: Some(vec![format!("prefect.flow-run.{run}")]),
                ..Default::default()
            }),
            occurred: Some(EventOccurredFilter {
                since: Some(since),
                until,
            }),
            ..Default::default()
        }),
        limit: 50,
    }
}

/// Creates an active global limit `name` of `limit` slots (panics if the server refuses).
pub async fn create_global_limit(client: &Client, name: &str, limit: i64) {
    if let Err(e) = client
        .global_concurrency_limits()
        .create(name, limit)
        .send()
        .await
    {
        panic!("cannot create the global limit {name:?}: {e}");
    }
}

/// Creates an active global limit of `limit` slots named after `prefix` (a name no other test
/// uses); its name.
pub async fn new_global_limit(client: &Client, prefix: &str, limit: i64) -> String {
    let name = unique(prefix);
    create_global_limit(client, &name, limit).await;
    name
}

/// Takes one slot of the limit `name` with a guard whose lease lasts `lease` (renewed by the guard).
pub async fn guard_with_lease(
    client: &Client,
    name: &str,
    lease: Duration,
) -> prefect_client::concurrency::SlotGuard {
    client
        .concurrency([name])
        .lease_duration(lease)
        .acquire()
        .await
        .unwrap()
}

/// Takes one slot of the limit `name` with a bare lease of `lease`: no guard renews or releases it.
pub async fn bare_lease(
    client: &Client,
    name: &str,
    lease: Duration,
) -> prefect_client::types::ConcurrencyLimitWithLeaseResponse {
    client
        .global_concurrency_limits()
        .increment_with_lease([name], 1)
        .lease_duration(lease)
        .send()
        .await
        .unwrap()
}

/// Releases `guard` and requires every slot of the limit `name` free again.
pub async fn release_and_expect_free(
    client: &Client,
    guard: prefect_client::concurrency::SlotGuard,
    name: &str,
) {
    guard.release().await.unwrap();
    assert_eq!(active_slots(client, name).await, 0);
}

/// A global limit's active slots now, read from the server.
pub async fn active_slots(client: &Client, name: &str) -> i64 {
    client
        .global_concurrency_limits()
        .get_by_name(name)
        .await
        .unwrap()
        .active_slots
}

/// A global limit's number of slots now, read from the server.
pub async fn limit_of(client: &Client, name: &str) -> i64 {
    client
        .global_concurrency_limits()
        .get_by_name(name)
        .await
        .unwrap()
        .limit
}

/// Renews the guard's lease for `lease` through `client`, as another holder of its id could.
pub async fn renew_through(client: &Client, guard: &prefect_client::concurrency::SlotGuard, lease: Duration) {
    client
        .global_concurrency_limits()
        .renew_lease(guard.lease_id().unwrap(), lease)
        .await
        .unwrap();
}

/// Polls until the limit's active slots equal `expected` or `within` passes; returns the last count.
pub async fn wait_until_slots(client: &Client, name: &str, expected: i64, within: Duration) -> i64 {
    poll_until(
        within,
        Duration::from_millis(100),
        || active_slots(client, name),
        |now| *now == expected,
    )
    .await
}

/// Reads `probe` every `every` until `done` holds for what it read or `within` passes; the last read.
pub async fn poll_until<T, F: Future<Output = T>>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let started = Instant::now();
    loop {
        let now = probe().await;
        if done(&now) || started.elapsed() >= within {
            return now;
        }
        tokio::time::sleep(every).await;
    }
}

/// Calls `probe` every `every` until it finds something, and returns that; panics saying `what`
/// once `within` passed without it.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    within: Duration,
    every: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(every).await;
    }
}

/// Checks `condition` every `every` until it holds; panics saying `what` once `within` passed.
pub async fn wait_until(within: Duration, every: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    eventually(within, every, what, || {
        std::future::ready(condition().then_some(()))
    })
    .await
}

/// Every item of a paged stream, in order (panics on an error).
pub async fn collect_all<T>(stream: impl futures_util::Stream<Item = Result<T, Error>>) -> Vec<T> {
    use futures_util::TryStreamExt;
    stream.try_collect().await.unwrap()
}

/// Reads a limit every `interval` in the background, keeping the highest active_slots seen;
/// a failed read fails the test at [`PeakPoller::stop`].
pub struct PeakPoller {
    peak: Arc<AtomicI64>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl PeakPoller {
    /// Starts polling `name` through `client`.
    pub fn start(client: &Client, name: &str, interval: Duration) -> PeakPoller {
        let peak = Arc::new(AtomicI64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let task = {
            let (client, name, peak, done) = (client.clone(), name.to_string(), peak.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let limit = client
                        .global_concurrency_limits()
                        .get_by_name(&name)
                        .await
                        .inspect_err(|e| {
                            eprintln!("a read failed after {:?}: {e:?}", started.elapsed());
                        })?;
                    peak.fetch_max(limit.active_slots, Ordering::SeqCst);
                    tokio::time::sleep(interval).await;
                }
                Ok(())
            })
        };
        PeakPoller { peak, done, task }
    }

    /// The highest active_slots seen so far.
    pub fn peak(&self) -> i64 {
        self.peak.load(Ordering::SeqCst)
    }

    /// Stops polling and returns the highest active_slots seen; panics if a read failed.
    pub async fn stop(self) -> i64 {
        self.done.store(true, Ordering::SeqCst);
        if let Err(e) = self.task.await.unwrap() {
            panic!("reading the limit failed while polling: {e}");
        }
        self.peak.load(Ordering::SeqCst)
    }
}

/// Collects what a tracing subscriber writes: `fmt().with_writer(move || captured.clone())`.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything the SDK traces on this thread, at the most verbose level, until the guard drops.
pub fn capture_traces() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (captured, set_test_subscriber(subscriber))
}

/// Installs `subscriber` as this thread's default, after giving the process a global baseline
/// dispatcher (a bare registry, once). With a single dispatcher registered, tracing-core caches
/// a callsite's interest from whichever thread reaches it first (tokio-rs/tracing#3611): a
/// sibling test's thread without a subscriber would silence the SDK's run spans for this one.
pub fn set_test_subscriber(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> tracing::subscriber::DefaultGuard {
    static BASELINE: std::sync::Once = std::sync::Once::new();
    BASELINE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    tracing::subscriber::set_default(subscriber)
}

/// Prefect's documented zombie-run automation ("detect zombie flows"), with a 10 s window: a
/// flow run whose heartbeats stop, without a final state, is set CRASHED.
pub async fn create_zombie_automation(client: &Client) {
    use prefect_client::resources::automations::AutomationSpec;
    let spec =
        AutomationSpec::crash_zombie_flow_runs(&unique("crash-zombie-flows")).within(Duration::from_secs(10));
    if let Err(e) = client.automations().create(&spec).await {
        panic!("cannot create the zombie-run automation: {e}");
    }
}
