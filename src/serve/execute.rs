//! Stages three and four of a served run: a [`Claimed`] run executed through `runs` (the run
//! Prefect created, adopted: what executes it recorded on it, its parameters checked, its
//! deployment lease renewed while it runs and released at its end), and how it ended
//! ([`RunEnded`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::claim::Claimed;
use super::core::Core;
use super::flow::RustFlow;
use super::found::Found;
use super::handle::{RunEnd, RunEnded};
use crate::Client;
use crate::error::LeaseLoss;
use crate::lease::{Cadence, GiveUp, RenewalRule, Renewer};
use crate::resources::call;
use crate::runs::{
    AbortOnDrop, Execution, Heartbeat, Outcome, Proposal, Run, Stop, Supervisor, propose_state,
};
use crate::types::{FlowRunUpdate, StateType};
use crate::waits::{DEPLOYMENT_LEASE_RENEW_EVERY, DEPLOYMENT_LEASE_RETRY, DEPLOYMENT_LEASE_TERM};

impl Core {
    /// Claimed → executing → ended: records what executes the run, fails it when its
    /// parameters do not fit its flow, executes it with its deployment lease renewed, releases
    /// the lease, and says how it ended.
    pub(crate) async fn execute(&self, claimed: Claimed) -> RunEnded {
        let Claimed {
            found,
            flow,
            lease,
            place,
        } = claimed;
        // Left when the run ended, however it ended.
        let _in_flight = place.in_flight;
        let (stop, stopped) = (place.stop, place.stopped);
        let (id, name) = (found.id, flow.name().to_string());
        let end = self.executed(found, &flow, lease, stop, stopped).await;
        RunEnded {
            flow_run_id: id,
            flow_name: name,
            end,
        }
    }

    /// Executes the claimed run `found` of `flow`; how it ended.
    async fn executed(
        &self,
        found: Found,
        flow: &RustFlow,
        lease: Option<Uuid>,
        stop: watch::Sender<Option<Stop>>,
        stopped: watch::Receiver<Option<Stop>>,
    ) -> RunEnd {
        self.record(&found, flow).await;
        if let Err(problem) = flow.check(&found.parameters) {
            tracing::warn!(flow_run_id = %found.id, %problem, "the run's parameters do not fit its flow; it fails");
            let proposal = Proposal::new(StateType::Failed).message(Some(problem.clone()));
            return match propose_state(&self.client, Run::Flow(found.id), &proposal).await {
                Ok(_) => RunEnd::Ended(Outcome::Failed(problem)),
                Err(e) => RunEnd::Failed(Arc::new(e)),
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
                Some(e) => RunEnd::Failed(Arc::new(e)),
                None => RunEnd::Ended(report.outcome),
            },
            Err(e) => RunEnd::Failed(Arc::new(e)),
        }
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
