//! A Rust worker on a work pool, as Prefect's workers do it: heartbeats (the UI shows it
//! online), polls of the pool's due runs (which hold the pool's and queues' concurrency
//! limits), and the runs of the flows it has handlers for executed in this process.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::core::Core;
use super::flow::RustFlow;
use super::found::Found;
use super::handle::{Serves, Serving};
use super::polling::{self, Due, Source};
use super::settings::ServeSettings;
use crate::resources::call;
use crate::resources::work_pools::WorkPoolSpec;
use crate::types::{EventFilter, GetScheduledFlowRunsBody, WorkPoolResponse, WorkerHeartbeatBody};
use crate::waits::WORKER_HEARTBEAT;
use crate::{Client, Error, OptionalExt};

/// The work pool type a Rust worker creates its pool with.
pub const WORKER_TYPE: &str = crate::resources::work_pools::RUST_WORKER_TYPE;

/// The fewest runs a worker's poll asks for: the pool's due runs include runs of flows this
/// worker has no handler for (skipped, left to their workers), which must not hide its own
/// behind them. The server still holds the pool's and queues' concurrency limits.
const POLL_AT_LEAST: usize = 50;

/// A worker on a work pool; from [`Client::worker`]. Set its options and [`ServeSettings`], then
/// [`until_signal`](Worker::until_signal) (it works until SIGTERM or Ctrl-C, then shuts down
/// gracefully) or [`start`](Worker::start) it for a [`Serving`] handle.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, flow: prefect_client::serve::RustFlow) -> Result<(), prefect_client::Error> {
/// use prefect_client::serve::ServeSettings;
///
/// client
///     .worker("rust-pool", [&flow])
///     .create_pool(true)
///     .settings(ServeSettings::default().limit(2))
///     .until_signal()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "call .until_signal() or .start() to work"]
pub struct Worker {
    client: Client,
    pool: String,
    flows: Vec<RustFlow>,
    queues: Vec<String>,
    name: String,
    create_pool: bool,
    heartbeat: Duration,
    settings: ServeSettings,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pool", &self.pool)
            .field("name", &self.name)
            .field("flows", &self.flows)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(crate) fn new<'a>(
        client: &Client,
        pool: &str,
        flows: impl IntoIterator<Item = &'a RustFlow>,
    ) -> Worker {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        Worker {
            client: client.clone(),
            pool: pool.to_string(),
            flows: flows.into_iter().cloned().collect(),
            queues: Vec::new(),
            name: format!("rust-worker-{host}-{}", std::process::id()),
            create_pool: false,
            heartbeat: WORKER_HEARTBEAT,
            settings: ServeSettings::default(),
        }
    }

    /// Only these queues of the pool (default: all).
    pub fn queues(mut self, queues: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.queues = queues.into_iter().map(|q| q.as_ref().to_string()).collect();
        self
    }

    /// The worker's name, as the pool lists it (default `rust-worker-<host>-<pid>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Creates the pool when it does not exist (type [`WORKER_TYPE`], with its base job
    /// template); default false: a missing pool is an error.
    pub fn create_pool(mut self, create: bool) -> Self {
        self.create_pool = create;
        self
    }

    /// How often it heartbeats (default 30 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_secs(1));
        self
    }

    /// How the worker works: runs at once, polls, shutdown (default
    /// [`ServeSettings::default`], Prefect's workers'); the pool's and queues' own concurrency
    /// limits hold besides.
    pub fn settings(mut self, settings: ServeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Finds (or creates) the pool, heartbeats once, and starts working in the background.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad pool name, no flows or two of one name (nothing sent);
    /// [`Error::NotFound`] for a pool that does not exist when `create_pool` is off; any other
    /// error of the requests.
    pub async fn start(self) -> Result<Serving, Error> {
        crate::resources::check_name("work pool name", &self.pool)?;
        let pool = match self
            .client
            .work_pools()
            .get_by_name(&self.pool)
            .await
            .optional()?
        {
            Some(pool) => pool,
            None if self.create_pool => self.create(&self.pool).await?,
            None => {
                return Err(Error::invalid(
                    "work pool",
                    format!(
                        "{:?} does not exist; create it (`prefect work-pool create {} --type {WORKER_TYPE}`) or start the worker with .create_pool(true)",
                        self.pool, self.pool
                    ),
                ));
            }
        };
        let labels: Map<String, Value> = [
            ("prefect.worker.name", json!(self.name)),
            ("prefect.worker.type", json!(WORKER_TYPE)),
            ("prefect.work-pool.name", json!(self.pool)),
            ("prefect.work-pool.id", json!(pool.id.to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let flows: Vec<&RustFlow> = self.flows.iter().collect();
        let core = Arc::new(Core::new(&self.client, &flows, labels)?.applying_job_labels());
        beat(&self.client, &self.pool, &self.name, self.heartbeat).await?;
        let heartbeats = tokio::spawn(keep_beating(
            self.client.clone(),
            self.pool.clone(),
            self.name.clone(),
            self.heartbeat,
        ));
        let source = Arc::new(Pool {
            name: self.pool.clone(),
            id: pool.id,
            queues: self.queues.clone(),
        });
        let serves = Serves::Pool(Box::new(pool));
        Ok(Serving::spawn(
            serves,
            "a worker was working",
            |stopping, ends| async move {
                let result = polling::run(core, source, self.settings, stopping, ends).await;
                heartbeats.abort();
                result
            },
        ))
    }

    /// Finds (or creates) the pool and works until SIGTERM or Ctrl-C, then shuts down
    /// gracefully ([`start`](Worker::start), then [`Serving::until_signal`]).
    ///
    /// # Errors
    /// As [`start`](Worker::start) and [`Serving::until_signal`].
    pub async fn until_signal(self) -> Result<(), Error> {
        self.start().await?.until_signal().await
    }

    /// Creates the pool with the base job template of a Rust worker: its runs' labels, recorded
    /// on each run it executes.
    async fn create(&self, name: &str) -> Result<WorkPoolResponse, Error> {
        let spec = WorkPoolSpec::new(name, WORKER_TYPE)
            .description("Runs Rust flows in the processes of its Rust workers.");
        // Created, or found as another worker created it meanwhile.
        Ok(self.client.work_pools().apply(&spec).await?.object)
    }
}

async fn beat(client: &Client, pool: &str, name: &str, every: Duration) -> Result<(), Error> {
    let body = WorkerHeartbeatBody {
        heartbeat_interval_seconds: Some(i64::try_from(every.as_secs()).unwrap_or(30)),
        name: name.to_string(),
    };
    call!(client, worker_heartbeat(pool, &body))
}

/// Heartbeats until aborted; a failed beat is logged, the next one tried.
async fn keep_beating(client: Client, pool: String, name: String, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = beat(&client, &pool, &name, every).await {
            tracing::warn!(pool = %pool, error = %e, "a worker heartbeat failed");
        }
    }
}

/// A work pool, as a source of runs.
struct Pool {
    name: String,
    id: uuid::Uuid,
    queues: Vec<String>,
}

impl Source for Pool {
    fn what(&self) -> &'static str {
        "worker"
    }

    fn due(&self, client: &Client, before: DateTime<Utc>, limit: usize) -> Due {
        let cap = client.page_cap.clone();
        let wanted = limit.max(POLL_AT_LEAST.min(cap.load(std::sync::atomic::Ordering::Relaxed) as usize));
        let body = GetScheduledFlowRunsBody {
            limit: None,
            scheduled_after: None,
            scheduled_before: Some(before),
            work_queue_names: self.queues.clone(),
        };
        let (client, pool) = (client.clone(), self.name.clone());
        Box::pin(async move {
            let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
            // A server whose page cap is lower says so: asked again within it.
            let (runs, _) = crate::resources::within_server_cap(&cap, wanted, 1, |size| {
                let body = GetScheduledFlowRunsBody {
                    limit: Some(i64::from(size)),
                    ..body.clone()
                };
                let (client, pool) = (client.clone(), pool.clone());
                async move { call!(client, get_scheduled_flow_runs(&pool, &body)) }
            })
            .await?;
            Ok(runs.into_iter().map(|run| Found::from(run.flow_run)).collect())
        })
    }

    fn wake_on(&self) -> EventFilter {
        super::watched_events(vec![format!("prefect.work-pool.{}", self.id)])
    }
}
