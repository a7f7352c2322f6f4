//! Stage two of a served run: a [`Found`] run claimed ([`Claimed`]) as Prefect's runner and
//! workers claim it (PENDING with a transition id of its own: any number of processes on one
//! deployment or pool, each run executed once), or adopted as a worker handed it over; a run
//! that is not this process's ends here, skipped.

use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use super::core::Core;
use super::flow::RustFlow;
use super::found::Found;
use super::handle::{RunEnd, RunEnded};
use crate::Error;
use crate::resources::flow_runs::is_final;
use crate::retry::{Retries, Verdict};
use crate::runs::{Answer, Proposal, Run, Stop, propose_state};
use crate::types::{State, StateType};
use crate::waits::CLAIM_RETRY;

/// A run this process claimed: its flow, the deployment concurrency lease the claim holds,
/// where stops from outside reach it, and its place among the runs in flight (left when this
/// value is dropped, however the run ends).
pub(crate) struct Claimed {
    pub(super) found: Found,
    pub(super) flow: RustFlow,
    /// The deployment concurrency lease the claim holds, if the deployment has a limit.
    pub(super) lease: Option<Uuid>,
    pub(super) place: Place,
}

/// A run's place among the runs in flight here: where a stop from outside is sent (the lease
/// renewer sends one when the slot is lost) and where the run receives it.
pub(crate) struct Place {
    pub(super) stop: watch::Sender<Option<Stop>>,
    pub(super) stopped: watch::Receiver<Option<Stop>>,
    pub(super) in_flight: InFlight,
}

impl Core {
    /// Found → claimed: the run is this process's, or it ends here skipped (another process
    /// took it, the server keeps it from starting, this process executes it already) or failed
    /// (the claim could not be sent).
    pub(crate) async fn claim(self: &Arc<Self>, found: Found, flow: RustFlow) -> Result<Claimed, RunEnded> {
        let place = self.enter(&found, &flow)?;
        match self.propose_claim(&found).await {
            Ok(Claim::Won(lease)) => Ok(Claimed {
                found,
                flow,
                lease,
                place,
            }),
            Ok(Claim::Lost(reason)) => Err(ended(&found, &flow, RunEnd::Skipped { reason })),
            Err(e) => Err(ended(&found, &flow, RunEnd::Failed(Arc::new(e)))),
        }
    }

    /// A run a worker handed over, claimed already (PENDING or RUNNING), taken as it is: its
    /// deployment lease is the one its state holds.
    pub(crate) fn adopt(self: &Arc<Self>, found: Found, flow: RustFlow) -> Result<Claimed, RunEnded> {
        let place = self.enter(&found, &flow)?;
        let lease = found
            .state
            .as_ref()
            .and_then(|s| s.state_details.as_ref())
            .and_then(|d| d.deployment_concurrency_lease_id);
        Ok(Claimed {
            found,
            flow,
            lease,
            place,
        })
    }

    /// Takes the run's place among the runs in flight (where a stop reaches it), unless it has
    /// one already.
    fn enter(self: &Arc<Self>, found: &Found, flow: &RustFlow) -> Result<Place, RunEnded> {
        let (stop, stopped) = watch::channel(None);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if in_flight.contains_key(&found.id) {
            let reason = "this process executes it already".to_string();
            return Err(ended(found, flow, RunEnd::Skipped { reason }));
        }
        in_flight.insert(found.id, stop.clone());
        let in_flight = InFlight {
            core: self.clone(),
            id: found.id,
        };
        Ok(Place {
            stop,
            stopped,
            in_flight,
        })
    }

    /// Proposes PENDING with a transition id of its own, as Prefect's runner and workers claim a
    /// run: ACCEPT (or a REJECT returning that very transition, the answer to a lost one sent
    /// again) makes it this process's; ABORT (another process took it) or another state
    /// (AwaitingConcurrencySlot, Cancelled: the deployment's limit) leaves it.
    async fn propose_claim(&self, found: &Found) -> Result<Claim, Error> {
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
}

/// How the run `found` of `flow` ended.
pub(super) fn ended(found: &Found, flow: &RustFlow, end: RunEnd) -> RunEnded {
    RunEnded {
        flow_run_id: found.id,
        flow_name: flow.name().to_string(),
        end,
    }
}

/// What a claim came to.
enum Claim {
    /// The run is this process's, holding this deployment concurrency lease (if any).
    Won(Option<Uuid>),
    /// Not this process's: why.
    Lost(String),
}

/// A run's place among the runs in flight: dropped, it is no longer in flight.
pub(crate) struct InFlight {
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
