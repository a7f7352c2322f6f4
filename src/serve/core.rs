//! The claim-and-execute core that serving, the worker and handed-over runs share: find the
//! flow of a run, claim the run (PENDING, with a transition id, as Prefect's runner and workers
//! do), record what executes it, renew its deployment's concurrency lease, and execute it
//! through `runs` (the run Prefect created, adopted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::flow::RustFlow;
use crate::error::LeaseLoss;
use crate::lease::{Cadence, GiveUp, RenewalRule, Renewer};
use crate::query::{
    FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType, FlowRunQuery,
};
use crate::resources::call;
use crate::resources::flow_runs::is_final;
use crate::retry::{Retries, Verdict};
use crate::runs::{
    AbortOnDrop, Answer, Execution, Heartbeat, Outcome, Proposal, Run, Stop, Supervisor, propose_state,
};
use crate::types::{FlowRunPolicy, FlowRunPolicyRetryType, FlowRunUpdate, State, StateType};
use crate::waits::{
    CANCELLATION_CHECK_EVERY, CLAIM_RETRY, DEPLOYMENT_LEASE_RENEW_EVERY, DEPLOYMENT_LEASE_RETRY,
    DEPLOYMENT_LEASE_TERM, STRANDED_RETRY_AFTER,
};
use crate::{Client, Error};

/// The end of a run cancelled from outside (the UI, Prefect's CLI or client).
const CANCELLED_FROM_OUTSIDE: &str = "cancelled; the Rust future was stopped";

/// A run a poll found, as far as executing it needs.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) id: Uuid,
    pub(crate) flow_id: Uuid,
    pub(crate) parameters: Map<String, Value>,
    pub(crate) state_type: Option<StateType>,
    /// The current state, when the poll read it (its deployment lease, for a run claimed by
    /// someone else).
    pub(crate) state: Option<State>,
    /// Whether it waits for a retry of a process that executes it (never claimed by another).
    pub(crate) in_process_retry: bool,
    /// How many times it had started (RUNNING) when it was found.
    pub(crate) run_count: i64,
    /// Its name, deployment and tags (its heartbeats' resources).
    pub(crate) name: String,
    pub(crate) deployment_id: Option<Uuid>,
    pub(crate) tags: Vec<String>,
    /// Its retry policy as the server has it (filled in, not replaced, when it is executed).
    pub(crate) policy: Option<FlowRunPolicy>,
    /// What executes it, as recorded (a worker's handle on a handed-over run's process).
    pub(crate) infrastructure_pid: Option<String>,
    /// When it is due (a retry's time, for a run waiting for one).
    pub(crate) due_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The job variables given to this run (over its deployment's).
    pub(crate) job_variables: Option<Map<String, Value>>,
}

impl Found {
    /// Whether a run waiting for the in-process retry of the process that executed it was left
    /// by that process: past its time by [`STRANDED_RETRY_AFTER`] (a live process proposes
    /// RUNNING at the time itself). Prefect's runner executes such a run; so does serving.
    fn stranded(&self) -> bool {
        self.in_process_retry
            && self.due_at.is_some_and(|at| {
                chrono::Utc::now() - at > chrono::Duration::from_std(STRANDED_RETRY_AFTER).unwrap_or_default()
            })
    }

    /// Whether any process may take the run: not waiting for another process's in-process
    /// retry, or waiting for one that was [`stranded`](Found::stranded).
    pub(crate) fn takeable(&self) -> bool {
        !self.in_process_retry || self.stranded()
    }
}

/// `Found` from each of the types the server describes a flow run with (the same fields).
macro_rules! found_from {
    ($($run:ty),+) => {$(
        impl From<$run> for Found {
            fn from(run: $run) -> Found {
                Found {
                    id: run.id,
                    flow_id: run.flow_id,
                    in_process_retry: in_process(&run.empirical_policy),
                    parameters: run.parameters,
                    state_type: run.state_type,
                    state: run.state,
                    run_count: run.run_count,
                    name: run.name.unwrap_or_default(),
                    deployment_id: run.deployment_id,
                    tags: run.tags,
                    policy: run.empirical_policy,
                    infrastructure_pid: run.infrastructure_pid,
                    due_at: run.next_scheduled_start_time,
                    job_variables: run.job_variables,
                }
            }
        }
    )+};
}
found_from!(crate::types::FlowRunResponse, crate::types::FlowRun);

fn in_process(policy: &Option<FlowRunPolicy>) -> bool {
    policy
        .as_ref()
        .and_then(|p| p.retry_type.as_ref())
        .is_some_and(|t| matches!(t, FlowRunPolicyRetryType::InProcess))
}

/// How a run this process took on ended.
#[derive(Debug)]
pub(crate) enum RunEnd {
    /// Another process took it, or the server keeps it from starting: nothing ran.
    Skipped(String),
    /// It ran to this end.
    Ended(Outcome<(), String>),
    /// Executing it failed for the SDK (the server away): the run is left to the server.
    Failed(Error),
}

impl From<RunEnd> for super::RunEnd {
    fn from(end: RunEnd) -> Self {
        match end {
            RunEnd::Skipped(reason) => super::RunEnd::Skipped { reason },
            RunEnd::Ended(outcome) => super::RunEnd::Ended(outcome),
            RunEnd::Failed(e) => super::RunEnd::Failed(Arc::new(e)),
        }
    }
}

/// The flows a process runs, the runs it executes, and what it records on them.
pub(crate) struct Core {
    pub(crate) client: Client,
    flows: HashMap<String, RustFlow>,
    flow_names: Mutex<HashMap<Uuid, String>>,
    in_flight: Mutex<HashMap<Uuid, watch::Sender<Option<Stop>>>>,
    /// Labels recorded on each run (a worker's name, type and pool).
    labels: Map<String, Value>,
    /// Set by a polling loop, which watches every run's cancellation through its one event
    /// subscription and its polls ([`Core::cancel`], [`Core::check_cancelled`]); otherwise each
    /// run watches its own (a handed-over run).
    shared_cancellation_watch: AtomicBool,
    /// When [`Core::check_cancelled`] last asked the server.
    cancellations_checked: Mutex<Option<Instant>>,
    /// Whether the runs were handed over by a worker (which records its own handle on them).
    handed_over: bool,
    /// Whether the runs' `labels` job variable (a Rust work pool's) is recorded on them.
    job_labels: bool,
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

    /// Claims the run (unless `claim` is false: it was claimed already, a handed-over run) and
    /// executes it with `flow`.
    pub(crate) async fn run(self: Arc<Self>, found: Found, flow: RustFlow, claim: bool) -> RunEnd {
        let (stop, stopped) = watch::channel(None);
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if in_flight.contains_key(&found.id) {
                return RunEnd::Skipped("this process executes it already".into());
            }
            in_flight.insert(found.id, stop.clone());
        }
        let _done = InFlight {
            core: self.clone(),
            id: found.id,
        };
        let lease = if claim {
            match self.claim(&found).await {
                Ok(Claim::Won(lease)) => lease,
                Ok(Claim::Lost(reason)) => return RunEnd::Skipped(reason),
                Err(e) => return RunEnd::Failed(e),
            }
        } else {
            found
                .state
                .as_ref()
                .and_then(|s| s.state_details.as_ref())
                .and_then(|d| d.deployment_concurrency_lease_id)
        };
        self.record(&found, &flow).await;
        if let Err(problem) = flow.check(&found.parameters) {
            tracing::warn!(flow_run_id = %found.id, %problem, "the run's parameters do not fit its flow; it fails");
            let proposal = Proposal::new(StateType::Failed).message(Some(problem.clone()));
            return match propose_state(&self.client, Run::Flow(found.id), &proposal).await {
                Ok(_) => RunEnd::Ended(Outcome::Failed(problem)),
                Err(e) => RunEnd::Failed(e),
            };
        }
        let running = Arc::new(tokio::sync::Notify::new());
        // Stopped however this future ends (a panic, a drop): a run that ended holds no slot.
        let _renewer = lease.map(|lease| {
            AbortOnDrop(
                tokio::spawn(renew(self.client.clone(), found.id, lease, stop, running.clone()))
                    .abort_handle(),
            )
        });
        let heartbeat = flow
            .options
            .heartbeat
            .or(self.client.config().flow_heartbeat())
            .map(|every| Heartbeat {
                every,
                run_name: found.name.clone(),
                flow_id: found.flow_id,
                flow_name: flow.name.clone(),
                deployment_id: found.deployment_id,
                tags: found.tags.clone(),
            });
        let execution = Execution {
            client: self.client.clone(),
            flow_run_id: found.id,
            flow_name: flow.name.clone(),
            heartbeat,
            timeout: flow.options.timeout,
            supervisor: Some(Supervisor {
                stop: stopped,
                running,
                watches_cancellation: self.shared_cancellation_watch.load(Ordering::Relaxed),
            }),
        };
        let parameters = found.parameters;
        let result = execution
            .run(|ctx| {
                Some(match flow.start(ctx, &parameters) {
                    Ok(future) => future,
                    Err(problem) => Box::pin(async move { Err(problem) }),
                })
            })
            .await;
        // The server gives a deployment slot back when a run leaves RUNNING, PENDING or
        // CANCELLING; a run ended while it waited in SCHEDULED (a retry's delay) keeps its lease
        // until it expires. Released here; a lease the server released already is left alone.
        if let Some(lease) = lease
            && let Err(e) = self
                .client
                .global_concurrency_limits()
                .decrement_with_lease(lease)
                .await
        {
            tracing::debug!(flow_run_id = %found.id, %lease, error = %e, "could not release the run's deployment slot; it comes back when its lease expires");
        }
        match result {
            // An end Prefect did not record is a failure of this process: a handed-over run
            // exits non-zero, so Prefect's worker marks it crashed.
            Ok(report) => match report.unreported {
                Some(e) => RunEnd::Failed(e),
                None => RunEnd::Ended(report.outcome),
            },
            Err(e) => RunEnd::Failed(e),
        }
    }

    /// Proposes PENDING with a transition id of its own, as Prefect's runner and workers claim a
    /// run: ACCEPT (or a REJECT returning that very transition, the answer to a lost one sent
    /// again) makes it this process's; ABORT (another process took it) or another state
    /// (AwaitingConcurrencySlot, Cancelled: the deployment's limit) leaves it.
    async fn claim(&self, found: &Found) -> Result<Claim, Error> {
        let id = found.id;
        let transition = Uuid::new_v4();
        let proposal = Proposal::new(StateType::Pending).transition(transition);
        // An answer lost: the same transition sent again is answered by what the server did
        // with the first.
        let answer = Retries::new(CLAIM_RETRY)
            .run(
                |e: &Error| Verdict::retry_if(e.is_transient()),
                |e, _| tracing::debug!(flow_run_id = %id, error = %e, "claiming the run failed; asking again"),
                |_| propose_state(&self.client, Run::Flow(id), &proposal),
            )
            .await?;
        let lease_of = |state: &Option<Box<State>>| {
            state
                .as_ref()
                .and_then(|s| s.state_details.as_ref())
                .and_then(|d| d.deployment_concurrency_lease_id)
        };
        let claim = match answer {
            Answer::Accepted(state) => Claim::Won(lease_of(&state)),
            Answer::Rejected(state)
                if state.as_ref().is_some_and(|s| {
                    s.type_ == StateType::Pending
                        && s.state_details.as_ref().and_then(|d| d.transition_id) == Some(transition)
                }) =>
            {
                Claim::Won(lease_of(&state))
            }
            Answer::Rejected(state) => {
                let (state, message) = Answer::rejected_state(&state);
                Claim::Lost(format!(
                    "the server keeps it {state}{}",
                    message.map(|m| format!(" ({m})")).unwrap_or_default()
                ))
            }
            Answer::Aborted(reason) => Claim::Lost(reason),
        };
        if let Claim::Won(_) = claim
            && let Some(reason) = self.executed_meanwhile(found, transition).await
        {
            return Ok(Claim::Lost(reason));
        }
        Ok(claim)
    }

    /// Whether another process executed the run between the read that found it and this
    /// process's claim, which the server then took all the same: it takes PENDING from a
    /// finished run (Completed, Failed, Crashed), and a claim may be answered late (waiting for
    /// the database, sent again). The run's RUNNING count tells; the end the run had is then
    /// set again (forced), and the run is left alone. A run that cannot be read is executed
    /// (left PENDING, it would be lost).
    async fn executed_meanwhile(&self, found: &Found, transition: Uuid) -> Option<String> {
        let run = match self.client.flow_runs().get(found.id).await {
            Ok(run) => run,
            Err(e) => {
                tracing::debug!(flow_run_id = %found.id, error = %e, "could not read the claimed run back; executing it");
                return None;
            }
        };
        if run.run_count <= found.run_count {
            return None;
        }
        let ours =
            |state: &State| state.state_details.as_ref().and_then(|d| d.transition_id) == Some(transition);
        // Read until the server answers: the run stays PENDING under this claim meanwhile.
        let states = crate::runs::resending("reading the states of a claimed run", || async {
            self.client.flow_runs().states(found.id).await
        })
        .await;
        let end = match states {
            Ok(states) => states
                .into_iter()
                .filter(|s| !ours(s) && is_final(&s.type_))
                .max_by_key(|s| s.timestamp),
            Err(e) => {
                tracing::warn!(flow_run_id = %found.id, error = %e, "could not read the states of a run another process executed");
                None
            }
        };
        if let Some(end) = end {
            let mut proposal = Proposal::new(end.type_.clone())
                .forced(true)
                .message(end.message.clone())
                .data(end.data.clone());
            if let Some(name) = &end.name {
                proposal = proposal.named(name);
            }
            if let Err(e) = propose_state(&self.client, Run::Flow(found.id), &proposal).await {
                tracing::warn!(flow_run_id = %found.id, error = %e, "could not set the end of a run another process executed back");
            }
        }
        Some(format!(
            "another process executed it while this claim waited (started {} times, {} when found); its end is set again",
            run.run_count, found.run_count
        ))
    }

    /// Records on the run what executes it, filling in what is unset as Prefect's engine does:
    /// the flow's retries and retry delay where the run has none (its pause keys, retry type
    /// and per-run retries kept), the flow's version, this process's id (`infrastructure_pid`,
    /// unless a handed-over run's worker recorded its own handle), and the labels. A failure is
    /// logged: the run still runs.
    async fn record(&self, found: &Found, flow: &RustFlow) {
        let id = found.id;
        let options = &flow.options;
        let mut policy = found.policy.clone().unwrap_or_default();
        let mut changed = false;
        if options.retries > 0 && policy.retries.is_none() {
            policy.retries = Some(i64::from(options.retries));
            changed = true;
        }
        if options.retries > 0 && policy.retry_delay.is_none() {
            policy.retry_delay = Some(options.retry_delay.as_secs().try_into().unwrap_or(i64::MAX));
            changed = true;
        }
        let keep_pid = self.handed_over && found.infrastructure_pid.as_deref().is_some_and(|p| !p.is_empty());
        let update = FlowRunUpdate {
            empirical_policy: changed.then_some(policy),
            flow_version: options.version.clone(),
            infrastructure_pid: (!keep_pid).then(|| std::process::id().to_string()),
            ..Default::default()
        };
        if let Err(e) = call!(self.client, update_flow_run(&id, &update)) {
            tracing::warn!(flow_run_id = %id, error = %e, "could not record the run's version, retries and process");
        }
        let mut labels = self.labels.clone();
        if self.job_labels {
            labels.extend(self.job_labels_of(found).await);
        }
        if !labels.is_empty()
            && let Err(e) = call!(self.client, update_flow_run_labels(&id, &labels))
        {
            tracing::warn!(flow_run_id = %id, error = %e, "could not label the run");
        }
    }

    /// The run's `labels` job variable: its deployment's, with the run's own over them. A
    /// deployment that cannot be read adds none (logged).
    async fn job_labels_of(&self, found: &Found) -> Map<String, Value> {
        let labels_in = |variables: Option<&Map<String, Value>>| {
            variables
                .and_then(|v| v.get("labels"))
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .filter(|(_, v)| v.is_string() || v.is_number() || v.is_boolean())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Map<String, Value>>()
                })
                .unwrap_or_default()
        };
        let mut labels = Map::new();
        if let Some(deployment) = found.deployment_id {
            match self.client.deployments().get(deployment).await {
                Ok(deployment) => labels.extend(labels_in(Some(&deployment.job_variables))),
                Err(e) => {
                    tracing::warn!(flow_run_id = %found.id, error = %e, "could not read the run's deployment for its labels job variable")
                }
            }
        }
        labels.extend(labels_in(found.job_variables.as_ref()));
        labels
    }
}

/// What a claim came to.
enum Claim {
    /// The run is this process's, holding this deployment concurrency lease (if any).
    Won(Option<Uuid>),
    /// Not this process's: why.
    Lost(String),
}

/// A run in flight: dropped, it is no longer.
struct InFlight {
    core: Arc<Core>,
    id: Uuid,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.core
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Renews a deployment run's concurrency lease while it runs, as Prefect's engine does: for
/// 300 s at a time, from when the server accepts RUNNING (until then the lease the claim made
/// lasts the deployment's `concurrency_grace_period`), every minute and again at each RUNNING
/// the server accepts (a retry), so a stall of minutes (a paused VM, a 503 storm) keeps the
/// slot and a process that dies frees it within five minutes. A lease the server no longer has
/// (410) stops the run CRASHED, since its slot may be another run's now. Transient failures
/// are tried again ([`DEPLOYMENT_LEASE_RETRY`]), then left to the next renewal.
async fn renew(
    client: Client,
    run: Uuid,
    lease: Uuid,
    stop: watch::Sender<Option<Stop>>,
    running: Arc<tokio::sync::Notify>,
) {
    let rule = RenewalRule {
        term: DEPLOYMENT_LEASE_TERM,
        cadence: Cadence::Every(DEPLOYMENT_LEASE_RENEW_EVERY),
        retry: DEPLOYMENT_LEASE_RETRY,
        give_up: GiveUp::UntilNextRenewal,
    };
    let limits = client.global_concurrency_limits();
    let on_lost = move |_: LeaseLoss| {
        tracing::error!(flow_run_id = %run, %lease, "the deployment's concurrency slot of the run was lost; stopping the run");
        let _ = stop.send(Some(Stop::Crash(
            "the deployment's concurrency slot of this run was lost (its lease expired or was revoked); the run was stopped so the limit holds"
                .into(),
        )));
    };
    Renewer::new(lease, "deployment run's concurrency lease", rule)
        .woken_by(running)
        .run(|term| limits.renew_lease(lease, term), on_lost)
        .instrument(tracing::info_span!("deployment_lease", flow_run_id = %run))
        .await;
}
