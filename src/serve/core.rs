//! What serving, the worker and handed-over runs share: [`Core`], the flows a process runs,
//! the runs in flight here and how a stop or a cancellation reaches them. A run goes through
//! stages, one value each: found (`found.rs`), claimed (`claim.rs`), executed and ended
//! (`execute.rs`); [`Core::serve`] takes it through all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::watch;
use uuid::Uuid;

use super::flow::RustFlow;
use super::found::Found;
use super::handle::RunEnded;
use crate::query::{
    FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType, FlowRunQuery,
};
use crate::runs::Stop;
use crate::types::StateType;
use crate::waits::CANCELLATION_CHECK_EVERY;
use crate::{Client, Error};

/// The end of a run cancelled from outside (the UI, Prefect's CLI or client).
const CANCELLED_FROM_OUTSIDE: &str = "cancelled; the Rust future was stopped";

/// The flows a process runs, the runs it executes, and what it records on them.
pub(crate) struct Core {
    pub(crate) client: Client,
    flows: HashMap<String, RustFlow>,
    flow_names: Mutex<HashMap<Uuid, String>>,
    /// The runs executing here, and where a stop reaches each.
    pub(super) in_flight: Mutex<HashMap<Uuid, watch::Sender<Option<Stop>>>>,
    /// Labels recorded on each run (a worker's name, type and pool).
    pub(super) labels: Map<String, Value>,
    /// Set by a polling loop, which watches every run's cancellation through its one event
    /// subscription and its polls ([`Core::cancel`], [`Core::check_cancelled`]); otherwise each
    /// run watches its own (a handed-over run).
    pub(super) shared_cancellation_watch: AtomicBool,
    /// When [`Core::check_cancelled`] last asked the server.
    cancellations_checked: Mutex<Option<Instant>>,
    /// Whether the runs were handed over by a worker (which records its own handle on them).
    pub(super) handed_over: bool,
    /// Whether the runs' `labels` job variable (a Rust work pool's) is recorded on them.
    pub(super) job_labels: bool,
}

impl Core {
    pub(crate) fn new(
        client: &Client,
        flows: &[&RustFlow],
        labels: Map<String, Value>,
    ) -> Result<Core, Error> {
        let mut by_name = HashMap::new();
        for flow in flows {
            crate::runs::check_run_name("flow name", flow.name())?;
            if by_name.insert(flow.name().to_string(), (*flow).clone()).is_some() {
                return Err(Error::invalid(
                    "flows",
                    format!(
                        "two flows named {:?}; give each flow a name of its own",
                        flow.name()
                    ),
                ));
            }
        }
        if by_name.is_empty() {
            return Err(Error::invalid("flows", "none given; give at least one RustFlow"));
        }
        Ok(Core {
            client: client.clone(),
            flows: by_name,
            flow_names: Mutex::default(),
            in_flight: Mutex::default(),
            labels,
            shared_cancellation_watch: AtomicBool::new(false),
            cancellations_checked: Mutex::default(),
            handed_over: false,
            job_labels: false,
        })
    }

    /// Records each run's `labels` job variable (its deployment's, then its own over them) on
    /// the run, beside the process's labels: what a Rust work pool's job template offers.
    pub(crate) fn applying_job_labels(mut self) -> Core {
        self.job_labels = true;
        self
    }

    /// Marks the runs as handed over by a worker: the worker's record of what executes them is
    /// kept.
    pub(crate) fn handed_over(mut self) -> Core {
        self.handed_over = true;
        self
    }

    /// From now on the runs' cancellations are watched by the caller (a polling loop) through
    /// [`Core::cancel`] and [`Core::check_cancelled`], not by one subscription per run: a
    /// process executing many runs keeps one subscription on the server.
    pub(crate) fn watch_cancellations_shared(&self) {
        self.shared_cancellation_watch.store(true, Ordering::Relaxed);
    }

    /// Stops the run, if this process executes it, because it was cancelled from outside.
    pub(crate) fn cancel(&self, id: Uuid) {
        if let Some(sender) = self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            tracing::info!(flow_run_id = %id, "the run was cancelled from outside; stopping it");
            let _ = sender.send(Some(Stop::Cancel(CANCELLED_FROM_OUTSIDE.into())));
        }
    }

    /// Stops the run, if this process executes it and the server has it CANCELLING or
    /// CANCELLED now: an event about a cancellation may be an old one (a subscription replays
    /// the last minutes), of a run cancelled and then retried. A run that cannot be read is
    /// left to the polls, which ask again.
    pub(crate) async fn cancel_if_cancelled(&self, id: Uuid) {
        if !self.is_in_flight(id) {
            return;
        }
        match self.client.flow_runs().get(id).await {
            Ok(run) if matches!(run.state_type, Some(StateType::Cancelling | StateType::Cancelled)) => {
                self.cancel(id)
            }
            Ok(_) => {
                tracing::debug!(flow_run_id = %id, "an event said the run was cancelled, and it is not now")
            }
            Err(e) => {
                tracing::debug!(flow_run_id = %id, error = %e, "could not read a run an event said was cancelled; the next poll asks")
            }
        }
    }

    /// Asks the server which of the runs executing here were cancelled (at most every
    /// [`CANCELLATION_CHECK_EVERY`]) and stops them: the fallback for cancellation events the
    /// subscription missed, as Prefect's runner polls for cancelling runs.
    pub(crate) async fn check_cancelled(&self) -> Result<(), Error> {
        let ids: Vec<Uuid> = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        {
            let mut checked = self
                .cancellations_checked
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if checked.is_some_and(|at| at.elapsed() < CANCELLATION_CHECK_EVERY) {
                return Ok(());
            }
            *checked = Some(Instant::now());
        }
        let query = FlowRunQuery {
            flow_runs: Some(FlowRunFilter {
                id: Some(FlowRunFilterId {
                    any: Some(ids),
                    ..Default::default()
                }),
                state: Some(FlowRunFilterState {
                    type_: Some(FlowRunFilterStateType {
                        any: Some(vec![StateType::Cancelling, StateType::Cancelled]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        for run in self.client.flow_runs().list_page(&query).await? {
            self.cancel(run.id);
        }
        Ok(())
    }

    /// The flow of this name, if this process runs it.
    pub(crate) fn flow_named(&self, name: &str) -> Option<&RustFlow> {
        self.flows.get(name)
    }

    /// The flow a run belongs to, if this process runs it (the flow's name read once per flow).
    pub(crate) async fn flow_of(&self, flow_id: Uuid) -> Result<Option<RustFlow>, Error> {
        let known = self
            .flow_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&flow_id)
            .cloned();
        let name = match known {
            Some(name) => name,
            None => {
                let name = self.client.flows().get(flow_id).await?.name.to_string();
                self.flow_names
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(flow_id, name.clone());
                name
            }
        };
        Ok(self.flows.get(&name).cloned())
    }

    /// Whether this process executes the run now.
    pub(crate) fn is_in_flight(&self, id: Uuid) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }

    /// Stops every run this process executes: they end as `stop` says.
    pub(crate) fn stop_all(&self, stop: Stop) {
        for sender in self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let _ = sender.send(Some(stop.clone()));
        }
    }

    /// A found run through every stage: claimed, executed, ended (or ended at its claim).
    pub(crate) async fn serve(self: Arc<Self>, found: Found, flow: RustFlow) -> RunEnded {
        match self.claim(found, flow).await {
            Ok(claimed) => self.execute(claimed).await,
            Err(ended) => ended,
        }
    }
}
