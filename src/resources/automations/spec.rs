//! An automation as code says it should be ([`AutomationSpec`]) and as the server has it
//! ([`Automation`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Action, ChangeFlowRunState, EventTrigger, Trigger};
use crate::Error;
use crate::resources::InvalidField;
use crate::types::StateType;

/// An automation as code says it should be: its trigger, its actions and the rest of what
/// Prefect stores. Send it with [`Automations::create`](super::Automations::create),
/// [`update`](super::Automations::update) or [`apply`](super::Automations::apply) (create or
/// update by name).
///
/// Serialized, it is the body Prefect's `POST /automations/` and `PUT /automations/{id}` take.
///
/// ```
/// use std::time::Duration;
/// use prefect_client::resources::automations::{AutomationSpec, EventTrigger, SendNotification};
///
/// # let slack = uuid::Uuid::nil();
/// let spec = AutomationSpec::new(
///     "etl-failures",
///     EventTrigger::reactive()
///         .expect(["prefect.flow-run.Failed"])
///         .matching_related("prefect.resource.id", ["prefect.tag.etl"]),
/// )
/// .action(SendNotification::new(slack, "{{ flow_run.name }} failed: {{ flow_run.state.message }}"))
/// .description("Tells the ETL channel about failed runs")
/// .tags(["etl"]);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use = "send it with client.automations().apply(&spec) (or create, update)"]
pub struct AutomationSpec {
    /// The name (what [`apply`](super::Automations::apply) finds it by).
    pub name: String,
    /// A longer description.
    #[serde(default)]
    pub description: String,
    /// Whether Prefect evaluates it.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it fires.
    pub trigger: Trigger,
    /// What it does when it fires.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// What it does when its trigger goes into the triggered state.
    #[serde(default)]
    pub actions_on_trigger: Vec<Action>,
    /// What it does when its trigger resolves.
    #[serde(default)]
    pub actions_on_resolve: Vec<Action>,
    /// A value a setter could not take, reported when the spec is sent.
    #[serde(skip)]
    invalid: Option<InvalidField>,
}

fn enabled() -> bool {
    true
}

impl AutomationSpec {
    /// An enabled automation `name` firing on `trigger`, without actions yet.
    pub fn new(name: &str, trigger: impl Into<Trigger>) -> AutomationSpec {
        AutomationSpec {
            name: name.to_string(),
            description: String::new(),
            enabled: true,
            tags: Vec::new(),
            trigger: trigger.into(),
            actions: Vec::new(),
            actions_on_trigger: Vec::new(),
            actions_on_resolve: Vec::new(),
            invalid: None,
        }
    }

    /// Prefect's automation for zombie flow runs ("Crash zombie flows" in Prefect's guide to
    /// detecting zombie flows): a flow run whose heartbeats stop before it reaches a final
    /// state is set CRASHED.
    ///
    /// After each `prefect.flow-run.heartbeat` of a flow run (`for_each` resource), it expects
    /// another heartbeat or a Completed, Failed, Cancelled or Crashed event of that run within
    /// the window; when none comes, it proposes CRASHED with the message "Flow run marked as
    /// crashed due to missing heartbeats.". A run that ended in a state of another name
    /// ("TimedOut") is left as it is: the server refuses to crash a run in a final state.
    ///
    /// The window is [`ZOMBIE_WINDOW`] (540 s): three missed heartbeats at Prefect's default
    /// heartbeat of 180 s (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, which this SDK's runs follow
    /// too). Prefect's guide shows 90 s, three periods of a 30 s heartbeat; with the default
    /// heartbeat a 90 s window would crash runs that are alive. Set it with
    /// [`within`](Self::within) to three times your heartbeat.
    ///
    /// ```no_run
    /// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
    /// use prefect_client::resources::automations::AutomationSpec;
    ///
    /// client.automations().apply(&AutomationSpec::crash_zombie_flow_runs("Crash zombie flows")).await?;
    /// # Ok(()) }
    /// ```
    pub fn crash_zombie_flow_runs(name: &str) -> AutomationSpec {
        let trigger = EventTrigger::proactive()
            .after(["prefect.flow-run.heartbeat"])
            .expect([
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            ])
            .matching("prefect.resource.id", ["prefect.flow-run.*"])
            .for_each(["prefect.resource.id"])
            .threshold(1)
            .within(ZOMBIE_WINDOW);
        AutomationSpec::new(name, trigger).action(
            ChangeFlowRunState::new(StateType::Crashed)
                .message("Flow run marked as crashed due to missing heartbeats."),
        )
    }

    /// Adds an action, done when it fires.
    pub fn action(mut self, action: impl Into<Action>) -> Self {
        self.actions.push(action.into());
        self
    }

    /// Adds an action done when its trigger goes into the triggered state.
    pub fn on_trigger(mut self, action: impl Into<Action>) -> Self {
        self.actions_on_trigger.push(action.into());
        self
    }

    /// Adds an action done when its trigger resolves.
    pub fn on_resolve(mut self, action: impl Into<Action>) -> Self {
        self.actions_on_resolve.push(action.into());
        self
    }

    /// The description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Whether Prefect evaluates it (default true).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Its tags (replacing those set before).
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The window of its trigger: an event trigger's `within`, or a compound or sequence
    /// trigger's. A trigger of a kind this SDK does not know has none it can set: reported when
    /// the spec is sent.
    pub fn within(mut self, within: Duration) -> Self {
        if let Err(problem) = self.trigger.set_within(within) {
            self.invalid
                .get_or_insert(InvalidField::new("automation trigger", problem));
        }
        self
    }

    /// What the server would refuse, found before anything is sent: a value a setter could
    /// not take, an empty name, a trigger the server would refuse.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if let Some(invalid) = &self.invalid {
            return Err(invalid.clone().into());
        }
        if self.name.trim().is_empty() {
            return Err(Error::invalid(
                "automation name",
                "it is empty; give the automation a name",
            ));
        }
        self.trigger
            .check()
            .map_err(|problem| Error::invalid("automation trigger", problem))?;
        if let Some(invalid) = self.all_actions().find_map(|(_, action)| action.invalid()) {
            return Err(invalid.clone().into());
        }
        Ok(())
    }

    /// Every action with where it is (`actions[0]`, `actions_on_resolve[1]`, …).
    pub(crate) fn all_actions(&self) -> impl Iterator<Item = (String, &Action)> {
        let named = [
            ("actions", &self.actions),
            ("actions_on_trigger", &self.actions_on_trigger),
            ("actions_on_resolve", &self.actions_on_resolve),
        ];
        named.into_iter().flat_map(|(name, actions)| {
            actions
                .iter()
                .enumerate()
                .map(move |(index, action)| (format!("{name}[{index}]"), action))
        })
    }

    /// The spec as the server keeps it, for comparing with what the server has: what the
    /// server fills in filled in, lists whose order means nothing sorted.
    pub(crate) fn normalized(&self) -> AutomationSpec {
        let actions = |actions: &[Action]| actions.iter().map(Action::normalized).collect();
        let mut tags = self.tags.clone();
        tags.sort();
        tags.dedup();
        AutomationSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            enabled: self.enabled,
            tags,
            trigger: self.trigger.normalized(),
            actions: actions(&self.actions),
            actions_on_trigger: actions(&self.actions_on_trigger),
            actions_on_resolve: actions(&self.actions_on_resolve),
            invalid: None,
        }
    }
}

/// The window of [`AutomationSpec::crash_zombie_flow_runs`]: three heartbeats at Prefect's
/// default of 180 s.
pub const ZOMBIE_WINDOW: Duration = Duration::from_secs(540);

/// An automation as the server has it: its id and times, and its [`AutomationSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Automation {
    /// Its id.
    pub id: Uuid,
    /// When it was created.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// When it was last changed.
    #[serde(default)]
    pub updated: Option<DateTime<Utc>>,
    /// Everything else: name, trigger, actions, … (send it back changed with
    /// [`Automations::update`](super::Automations::update)).
    #[serde(flatten)]
    pub spec: AutomationSpec,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::automations::{RunDeployment, Target};
    use serde_json::json;

    #[test]
    fn the_zombie_automation_is_prefect_s_documented_one() {
        let spec = AutomationSpec::crash_zombie_flow_runs("Crash zombie flows");
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({
                "name": "Crash zombie flows",
                "description": "",
                "enabled": true,
                "tags": [],
                "trigger": {
                    "type": "event",
                    "posture": "Proactive",
                    "after": ["prefect.flow-run.heartbeat"],
                    "expect": [
                        "prefect.flow-run.Cancelled",
                        "prefect.flow-run.Completed",
                        "prefect.flow-run.Crashed",
                        "prefect.flow-run.Failed",
                        "prefect.flow-run.heartbeat"
                    ],
                    "match": { "prefect.resource.id": ["prefect.flow-run.*"] },
                    "match_related": {},
                    "for_each": ["prefect.resource.id"],
                    "threshold": 1,
                    "within": 540.0
                },
                "actions": [{
                    "type": "change-flow-run-state",
                    "state": "CRASHED",
                    "name": null,
                    "message": "Flow run marked as crashed due to missing heartbeats.",
                    "force": false
                }],
                "actions_on_trigger": [],
                "actions_on_resolve": []
            })
        );
        let ten = spec.within(Duration::from_secs(10));
        let Trigger::Event(trigger) = &ten.trigger else {
            panic!("{:?}", ten.trigger)
        };
        assert_eq!(trigger.within, Duration::from_secs(10));
        ten.check().unwrap();
    }

    #[test]
    fn a_spec_is_checked_before_it_is_sent() {
        let short = AutomationSpec::crash_zombie_flow_runs("z").within(Duration::from_secs(5));
        let err = short.check().unwrap_err();
        assert!(
            err.is_client_side() && err.to_string().contains("at least 10 s"),
            "{err}"
        );
        let unnamed = AutomationSpec::new(" ", EventTrigger::reactive());
        assert!(unnamed.check().unwrap_err().to_string().contains("name"));
        let unknown = AutomationSpec::new("u", Trigger::Other(json!({ "type": "metric" })))
            .within(Duration::from_secs(60));
        assert!(unknown.check().unwrap_err().to_string().contains("metric"));
        let bad_parameters = AutomationSpec::new("p", EventTrigger::reactive())
            .on_resolve(RunDeployment::inferred().parameters(&"text"));
        assert!(
            bad_parameters
                .check()
                .unwrap_err()
                .to_string()
                .contains("run-deployment parameters")
        );
    }

    #[test]
    fn actions_are_named_by_their_list_and_place() {
        let spec = AutomationSpec::new("n", EventTrigger::reactive())
            .action(Action::DoNothing)
            .action(Action::CancelFlowRun)
            .on_resolve(Action::PauseDeployment(Target::Inferred));
        let places: Vec<(String, &str)> = spec.all_actions().map(|(at, a)| (at, a.kind())).collect();
        assert_eq!(
            places,
            [
                ("actions[0]".to_string(), "do-nothing"),
                ("actions[1]".to_string(), "cancel-flow-run"),
                ("actions_on_resolve[0]".to_string(), "pause-deployment"),
            ]
        );
    }

    #[test]
    fn an_automation_as_the_server_sends_it_is_read() {
        let automation: Automation = serde_json::from_value(json!({
            "id": "a3f6e9a4-1d5b-4c1e-9d3e-1f2a3b4c5d6e",
            "created": "2026-12-01T10:00:00Z",
            "updated": "2026-12-01T10:00:01Z",
            "name": "n",
            "description": "",
            "enabled": false,
            "tags": ["b", "a"],
            "trigger": { "type": "event", "id": "0b7c2f4e-3b59-4c5e-8f8d-2a1d2b3c4d5e", "posture": "Reactive",
                         "match": {}, "match_related": {}, "after": [], "expect": [], "for_each": [],
                         "threshold": 1, "within": 0.0 },
            "actions": [{ "type": "do-nothing" }],
            "actions_on_trigger": [],
            "actions_on_resolve": []
        }))
        .unwrap();
        let spec = AutomationSpec::new("n", EventTrigger::reactive())
            .action(Action::DoNothing)
            .enabled(false)
            .tags(["a", "b"]);
        assert_ne!(automation.spec, spec);
        assert_eq!(automation.spec.normalized(), spec.normalized());
    }
}
