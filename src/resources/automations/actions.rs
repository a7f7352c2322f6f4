//! What an automation does when it fires: [`Action`], one variant per kind of Prefect's
//! actions, with the kinds this SDK does not know kept as they came.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::tagged;
use crate::resources::{InvalidField, json_object};
use crate::types::StateType;

/// One action of an automation; Prefect's action union, told apart by its `type`.
///
/// Build the ones with settings from their types ([`RunDeployment`], [`ChangeFlowRunState`],
/// [`SendNotification`], [`CallWebhook`]), which convert into an `Action`; the others are
/// variants of their own.
///
/// An action this SDK does not know (Prefect Cloud's `declare-incident`, or one a newer server
/// adds) is kept as [`Action::Other`], exactly as the server sent it, and sent back unchanged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// `do-nothing`.
    DoNothing,
    /// `run-deployment`: creates a flow run of a deployment.
    RunDeployment(RunDeployment),
    /// `pause-deployment`: pauses a deployment's schedules.
    PauseDeployment(Target),
    /// `resume-deployment`.
    ResumeDeployment(Target),
    /// `change-flow-run-state`: proposes a state for the flow run of the triggering event.
    ChangeFlowRunState(ChangeFlowRunState),
    /// `cancel-flow-run`: cancels the flow run of the triggering event.
    CancelFlowRun,
    /// `suspend-flow-run`: suspends the flow run of the triggering event.
    SuspendFlowRun,
    /// `resume-flow-run`: resumes the paused or suspended flow run of the triggering event.
    ResumeFlowRun,
    /// `delete-flow-run`: deletes the flow run of the triggering event.
    DeleteFlowRun,
    /// `pause-work-pool`.
    PauseWorkPool(Target),
    /// `resume-work-pool`.
    ResumeWorkPool(Target),
    /// `pause-work-queue`.
    PauseWorkQueue(Target),
    /// `resume-work-queue`.
    ResumeWorkQueue(Target),
    /// `pause-automation`: turns an automation off.
    PauseAutomation(Target),
    /// `resume-automation`: turns an automation on.
    ResumeAutomation(Target),
    /// `send-notification`: sends a message through a notification block.
    SendNotification(SendNotification),
    /// `call-webhook`: calls a webhook block.
    CallWebhook(CallWebhook),
    /// A kind of action this SDK does not know, as the server sent it (its `type` included).
    Other(Value),
}

/// Which object an action works on: Prefect's `source` with the object's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// This one (`source: "selected"` with its id).
    Selected(Uuid),
    /// The one the triggering event is about, read from its resources (`source: "inferred"`).
    Inferred,
}

impl Action {
    /// Prefect's name of the action's kind (its `type`), e.g. `run-deployment`; for an unknown
    /// action what it says (`unknown` when it says nothing).
    pub fn kind(&self) -> &str {
        match self {
            Action::DoNothing => "do-nothing",
            Action::RunDeployment(_) => "run-deployment",
            Action::PauseDeployment(_) => "pause-deployment",
            Action::ResumeDeployment(_) => "resume-deployment",
            Action::ChangeFlowRunState(_) => "change-flow-run-state",
            Action::CancelFlowRun => "cancel-flow-run",
            Action::SuspendFlowRun => "suspend-flow-run",
            Action::ResumeFlowRun => "resume-flow-run",
            Action::DeleteFlowRun => "delete-flow-run",
            Action::PauseWorkPool(_) => "pause-work-pool",
            Action::ResumeWorkPool(_) => "resume-work-pool",
            Action::PauseWorkQueue(_) => "pause-work-queue",
            Action::ResumeWorkQueue(_) => "resume-work-queue",
            Action::PauseAutomation(_) => "pause-automation",
            Action::ResumeAutomation(_) => "resume-automation",
            Action::SendNotification(_) => "send-notification",
            Action::CallWebhook(_) => "call-webhook",
            Action::Other(value) => tagged::kind_of(value).unwrap_or("unknown"),
        }
    }

    /// The action's fields besides `type`, as sent.
    fn fields(&self) -> Result<Map<String, Value>, serde_json::Error> {
        let target = |target: &Target, id: &str| {
            let mut fields = Map::new();
            match target {
                Target::Selected(object) => {
                    fields.insert("source".into(), "selected".into());
                    fields.insert(id.into(), object.to_string().into());
                }
                Target::Inferred => {
                    fields.insert("source".into(), "inferred".into());
                }
            }
            fields
        };
        let object = |value: Value| match value {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        Ok(match self {
            Action::DoNothing
            | Action::CancelFlowRun
            | Action::SuspendFlowRun
            | Action::ResumeFlowRun
            | Action::DeleteFlowRun
            | Action::Other(_) => Map::new(),
            Action::RunDeployment(run) => {
                let mut fields = target(&run.target, "deployment_id");
                fields.insert("parameters".into(), serde_json::to_value(&run.parameters)?);
                fields.insert("job_variables".into(), serde_json::to_value(&run.job_variables)?);
                fields.insert("schedule_after".into(), run.schedule_after.as_secs_f64().into());
                fields
            }
            Action::PauseDeployment(t) | Action::ResumeDeployment(t) => target(t, "deployment_id"),
            Action::PauseWorkPool(t) | Action::ResumeWorkPool(t) => target(t, "work_pool_id"),
            Action::PauseWorkQueue(t) | Action::ResumeWorkQueue(t) => target(t, "work_queue_id"),
            Action::PauseAutomation(t) | Action::ResumeAutomation(t) => target(t, "automation_id"),
            Action::ChangeFlowRunState(change) => object(serde_json::to_value(change)?),
            Action::SendNotification(notification) => object(serde_json::to_value(notification)?),
            Action::CallWebhook(webhook) => object(serde_json::to_value(webhook)?),
        })
    }

    /// An action from its JSON: known kinds decoded by their `type`; anything else (another
    /// kind, or a known kind this SDK cannot read) kept as it is.
    fn from_json(value: Value) -> Action {
        let target = |id: &str| read_target(&value, id);
        let known = match tagged::kind_of(&value) {
            Some("do-nothing") => Some(Action::DoNothing),
            Some("run-deployment") => RunDeployment::from_json(&value).map(Action::RunDeployment),
            Some("pause-deployment") => target("deployment_id").map(Action::PauseDeployment),
            Some("resume-deployment") => target("deployment_id").map(Action::ResumeDeployment),
            Some("change-flow-run-state") => tagged::decode(&value).map(Action::ChangeFlowRunState),
            Some("cancel-flow-run") => Some(Action::CancelFlowRun),
            Some("suspend-flow-run") => Some(Action::SuspendFlowRun),
            Some("resume-flow-run") => Some(Action::ResumeFlowRun),
            Some("delete-flow-run") => Some(Action::DeleteFlowRun),
            Some("pause-work-pool") => target("work_pool_id").map(Action::PauseWorkPool),
            Some("resume-work-pool") => target("work_pool_id").map(Action::ResumeWorkPool),
            Some("pause-work-queue") => target("work_queue_id").map(Action::PauseWorkQueue),
            Some("resume-work-queue") => target("work_queue_id").map(Action::ResumeWorkQueue),
            Some("pause-automation") => target("automation_id").map(Action::PauseAutomation),
            Some("resume-automation") => target("automation_id").map(Action::ResumeAutomation),
            Some("send-notification") => tagged::decode(&value).map(Action::SendNotification),
            Some("call-webhook") => tagged::decode(&value).map(Action::CallWebhook),
            _ => None,
        };
        known.unwrap_or(Action::Other(value))
    }

    /// The action as the server keeps it, for comparing: no parameters and empty parameters
    /// are the same (as for job variables).
    pub(crate) fn normalized(&self) -> Action {
        match self {
            Action::RunDeployment(run) => {
                let empty_is_none =
                    |map: &Option<Map<String, Value>>| map.clone().filter(|map| !map.is_empty());
                Action::RunDeployment(RunDeployment {
                    parameters: empty_is_none(&run.parameters),
                    job_variables: empty_is_none(&run.job_variables),
                    ..run.clone()
                })
            }
            other => other.clone(),
        }
    }

    /// A value its builder could not take, to report before anything is sent.
    pub(crate) fn invalid(&self) -> Option<&InvalidField> {
        match self {
            Action::RunDeployment(run) => run.invalid.as_ref(),
            _ => None,
        }
    }

    /// The templates of the action, each with the field it is in: a notification's subject and
    /// body, a webhook's payload, the Jinja of a deployment run's parameters (strings with
    /// `{{`/`{%`, and `{"__prefect_kind": "jinja", "template": ...}` values). Strings without
    /// a `{` cannot hold Jinja and are left out.
    pub(crate) fn templates(&self) -> Vec<(String, &str)> {
        let mut found = Vec::new();
        match self {
            Action::SendNotification(notification) => {
                found.push(("subject".to_string(), notification.subject.as_str()));
                found.push(("body".to_string(), notification.body.as_str()));
            }
            Action::CallWebhook(webhook) => found.push(("payload".to_string(), webhook.payload.as_str())),
            Action::RunDeployment(run) => {
                if let Some(parameters) = &run.parameters {
                    for (name, value) in parameters {
                        parameter_templates(&format!("parameters.{name}"), value, &mut found);
                    }
                }
            }
            _ => {}
        }
        found.retain(|(_, template)| template.contains('{'));
        found
    }
}

/// The templates in one parameter's value (see [`Action::templates`]).
fn parameter_templates<'a>(at: &str, value: &'a Value, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(text) if text.contains("{{") || text.contains("{%") => {
            found.push((at.to_string(), text));
        }
        Value::Object(object) => {
            if object.get("__prefect_kind").and_then(Value::as_str) == Some("jinja")
                && let Some(Value::String(template)) = object.get("template")
            {
                found.push((at.to_string(), template));
                return;
            }
            for (key, inner) in object {
                parameter_templates(&format!("{at}.{key}"), inner, found);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                parameter_templates(&format!("{at}[{index}]"), inner, found);
            }
        }
        _ => {}
    }
}

/// The target of an action's JSON: `source` (Prefect's default `selected`) and, for a
/// selected one, the id in the field `id`; `None` when they do not fit together.
fn read_target(value: &Value, id: &str) -> Option<Target> {
    match value.get("source").and_then(Value::as_str).unwrap_or("selected") {
        "inferred" => Some(Target::Inferred),
        "selected" => value
            .get(id)
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok())
            .map(Target::Selected),
        _ => None,
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Action::Other(value) = self {
            return value.serialize(serializer);
        }
        let fields = self.fields().map_err(serde::ser::Error::custom)?;
        tagged::serialize(serializer, self.kind(), &fields)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Action::from_json)
    }
}

/// `run-deployment`: creates a flow run of a deployment (Prefect's `RunDeployment`).
///
/// ```
/// use std::time::Duration;
/// use prefect_client::resources::automations::{Action, RunDeployment};
///
/// # let deployment = uuid::Uuid::nil();
/// let action: Action = RunDeployment::selected(deployment)
///     .parameters(&serde_json::json!({
///         // Jinja, rendered when the automation fires.
///         "run": "{{ flow_run.name }}",
///     }))
///     .schedule_after(Duration::from_secs(60))
///     .into();
/// # let _ = action;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunDeployment {
    /// The deployment.
    pub target: Target,
    /// The run's parameters (strings with Jinja are rendered when the action runs); `None`:
    /// the deployment's own.
    pub parameters: Option<Map<String, Value>>,
    /// The run's job variables; `None`: the deployment's own.
    pub job_variables: Option<Map<String, Value>>,
    /// How long after the automation fires the run is scheduled.
    pub schedule_after: Duration,
    /// A value the builder could not take, reported when the automation is sent.
    invalid: Option<InvalidField>,
}

impl RunDeployment {
    /// Runs the deployment with this id.
    pub fn selected(deployment: Uuid) -> RunDeployment {
        RunDeployment::new(Target::Selected(deployment))
    }

    /// Runs the deployment the triggering event is about.
    pub fn inferred() -> RunDeployment {
        RunDeployment::new(Target::Inferred)
    }

    fn new(target: Target) -> RunDeployment {
        RunDeployment {
            target,
            parameters: None,
            job_variables: None,
            schedule_after: Duration::ZERO,
            invalid: None,
        }
    }

    /// The run's parameters: any value serializing to a JSON object (a bad one is reported
    /// when the automation is sent).
    pub fn parameters(mut self, parameters: &impl Serialize) -> Self {
        match json_object("run-deployment parameters", parameters) {
            Ok(object) => self.parameters = Some(object),
            Err(invalid) => {
                self.invalid.get_or_insert(invalid);
            }
        }
        self
    }

    /// The run's job variables: any value serializing to a JSON object.
    pub fn job_variables(mut self, variables: &impl Serialize) -> Self {
        match json_object("run-deployment job variables", variables) {
            Ok(object) => self.job_variables = Some(object),
            Err(invalid) => {
                self.invalid.get_or_insert(invalid);
            }
        }
        self
    }

    /// Schedules the run this long after the automation fires (default: at once).
    pub fn schedule_after(mut self, delay: Duration) -> Self {
        self.schedule_after = delay;
        self
    }

    fn from_json(value: &Value) -> Option<RunDeployment> {
        let object = |name: &str| match value.get(name) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(map)) => Some(Some(map.clone())),
            Some(_) => None,
        };
        let schedule_after = match value.get("schedule_after") {
            None | Some(Value::Null) => Duration::ZERO,
            Some(secs) => Duration::try_from_secs_f64(secs.as_f64()?).ok()?,
        };
        Some(RunDeployment {
            target: read_target(value, "deployment_id")?,
            parameters: object("parameters")?,
            job_variables: object("job_variables")?,
            schedule_after,
            invalid: None,
        })
    }
}

impl From<RunDeployment> for Action {
    fn from(action: RunDeployment) -> Action {
        Action::RunDeployment(action)
    }
}

/// `change-flow-run-state`: proposes a state for the flow run of the triggering event
/// (Prefect's `ChangeFlowRunState`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChangeFlowRunState {
    /// The state's type.
    pub state: StateType,
    /// The state's name; `None`: the type's own (`Crashed` for CRASHED).
    #[serde(default)]
    pub name: Option<String>,
    /// The state's message; `None`: the server writes one naming the automation.
    #[serde(default)]
    pub message: Option<String>,
    /// Sets the state even where orchestration would refuse the transition.
    #[serde(default)]
    pub force: bool,
}

impl ChangeFlowRunState {
    /// Proposes a state of this type.
    pub fn new(state: StateType) -> ChangeFlowRunState {
        ChangeFlowRunState {
            state,
            name: None,
            message: None,
            force: false,
        }
    }

    /// The state's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The state's message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the state even where orchestration would refuse the transition.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

impl From<ChangeFlowRunState> for Action {
    fn from(action: ChangeFlowRunState) -> Action {
        Action::ChangeFlowRunState(action)
    }
}

/// `send-notification`: sends a message through a notification block (Prefect's
/// `SendNotification`). Subject and body are Jinja templates, checked with the server's own
/// check before the automation is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SendNotification {
    /// The notification block document.
    pub block_document_id: Uuid,
    /// The subject (a template).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// The body (a template).
    pub body: String,
}

fn default_subject() -> String {
    "Prefect automated notification".to_string()
}

impl SendNotification {
    /// A notification with this body through the block document `block_document_id`, with
    /// Prefect's default subject ("Prefect automated notification").
    pub fn new(block_document_id: Uuid, body: impl Into<String>) -> SendNotification {
        SendNotification {
            block_document_id,
            subject: default_subject(),
            body: body.into(),
        }
    }

    /// The subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }
}

impl From<SendNotification> for Action {
    fn from(action: SendNotification) -> Action {
        Action::SendNotification(action)
    }
}

/// `call-webhook`: calls a webhook block (Prefect's `CallWebhook`). The payload is a Jinja
/// template, checked with the server's own check before the automation is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallWebhook {
    /// The webhook block document.
    pub block_document_id: Uuid,
    /// The payload (a template); empty: none.
    #[serde(default)]
    pub payload: String,
}

impl CallWebhook {
    /// Calls the webhook of the block document `block_document_id`, without a payload.
    pub fn new(block_document_id: Uuid) -> CallWebhook {
        CallWebhook {
            block_document_id,
            payload: String::new(),
        }
    }

    /// The payload.
    pub fn payload(mut self, payload: impl Into<String>) -> Self {
        self.payload = payload.into();
        self
    }
}

impl From<CallWebhook> for Action {
    fn from(action: CallWebhook) -> Action {
        Action::CallWebhook(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Every kind this SDK knows, with its JSON as the server sends it back.
    fn every_kind() -> Vec<(Action, Value)> {
        let (d, p, q, a, b) = (id(1), id(2), id(3), id(4), id(5));
        vec![
            (Action::DoNothing, json!({ "type": "do-nothing" })),
            (
                RunDeployment::selected(d)
                    .parameters(&json!({ "x": 1, "who": "{{ event.resource.id }}" }))
                    .job_variables(&json!({ "image": "etl:2" }))
                    .schedule_after(Duration::from_secs(30))
                    .into(),
                json!({ "type": "run-deployment", "source": "selected", "deployment_id": d,
                        "parameters": { "x": 1, "who": "{{ event.resource.id }}" },
                        "job_variables": { "image": "etl:2" }, "schedule_after": 30.0 }),
            ),
            (
                RunDeployment::inferred().into(),
                json!({ "type": "run-deployment", "source": "inferred", "parameters": null,
                        "job_variables": null, "schedule_after": 0.0 }),
            ),
            (
                Action::PauseDeployment(Target::Selected(d)),
                json!({ "type": "pause-deployment", "source": "selected", "deployment_id": d }),
            ),
            (
                Action::ResumeDeployment(Target::Inferred),
                json!({ "type": "resume-deployment", "source": "inferred" }),
            ),
            (
                ChangeFlowRunState::new(StateType::Crashed)
                    .name("Zombie")
                    .message("gone")
                    .force(true)
                    .into(),
                json!({ "type": "change-flow-run-state", "state": "CRASHED", "name": "Zombie",
                        "message": "gone", "force": true }),
            ),
            (Action::CancelFlowRun, json!({ "type": "cancel-flow-run" })),
            (Action::SuspendFlowRun, json!({ "type": "suspend-flow-run" })),
            (Action::ResumeFlowRun, json!({ "type": "resume-flow-run" })),
            (Action::DeleteFlowRun, json!({ "type": "delete-flow-run" })),
            (
                Action::PauseWorkPool(Target::Selected(p)),
                json!({ "type": "pause-work-pool", "source": "selected", "work_pool_id": p }),
            ),
            (
                Action::ResumeWorkPool(Target::Inferred),
                json!({ "type": "resume-work-pool", "source": "inferred" }),
            ),
            (
                Action::PauseWorkQueue(Target::Selected(q)),
                json!({ "type": "pause-work-queue", "source": "selected", "work_queue_id": q }),
            ),
            (
                Action::ResumeWorkQueue(Target::Selected(q)),
                json!({ "type": "resume-work-queue", "source": "selected", "work_queue_id": q }),
            ),
            (
                Action::PauseAutomation(Target::Selected(a)),
                json!({ "type": "pause-automation", "source": "selected", "automation_id": a }),
            ),
            (
                Action::ResumeAutomation(Target::Inferred),
                json!({ "type": "resume-automation", "source": "inferred" }),
            ),
            (
                SendNotification::new(b, "{{ flow_run.name }} failed")
                    .subject("ETL")
                    .into(),
                json!({ "type": "send-notification", "block_document_id": b, "subject": "ETL",
                        "body": "{{ flow_run.name }} failed" }),
            ),
            (
                CallWebhook::new(b)
                    .payload(r#"{"run": "{{ flow_run.id }}"}"#)
                    .into(),
                json!({ "type": "call-webhook", "block_document_id": b,
                        "payload": r#"{"run": "{{ flow_run.id }}"}"# }),
            ),
        ]
    }

    #[test]
    fn every_kind_is_sent_and_read_by_its_type() {
        let kinds = every_kind();
        for (action, wire) in &kinds {
            let sent = serde_json::to_value(action).unwrap();
            assert_eq!(&sent, wire, "{}", action.kind());
            let read: Action = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(&read, action, "{}", action.kind());
        }
        // Each variant of the enum is covered (an `Other` aside).
        let mut seen: Vec<&str> = kinds.iter().map(|(a, _)| a.kind()).collect();
        seen.dedup();
        assert_eq!(seen.len(), 17);
    }

    #[test]
    fn the_server_s_defaults_and_extra_fields_are_read() {
        // Prefect's defaults (source "selected", a default subject) and fields the server adds.
        let read: Action = serde_json::from_value(json!({
            "type": "send-notification", "block_document_id": id(9), "body": "b", "extra": 1
        }))
        .unwrap();
        assert_eq!(read, SendNotification::new(id(9), "b").into());
        let read: Action =
            serde_json::from_value(json!({ "type": "pause-work-pool", "work_pool_id": id(2) })).unwrap();
        assert_eq!(read, Action::PauseWorkPool(Target::Selected(id(2))));
    }

    #[test]
    fn an_unknown_action_is_kept_and_sent_back_as_it_came() {
        let cloud = json!({ "type": "declare-incident", "severity": "high", "labels": { "a": [1, 2] } });
        let read: Action = serde_json::from_value(cloud.clone()).unwrap();
        assert_eq!(read, Action::Other(cloud.clone()));
        assert_eq!(read.kind(), "declare-incident");
        assert_eq!(serde_json::to_value(&read).unwrap(), cloud);
        // A known kind that does not fit (a selected deployment without its id) is kept too.
        for odd in [
            json!({ "type": "pause-deployment", "source": "selected" }),
            json!({ "type": "run-deployment", "source": "inferred", "parameters": [1] }),
            json!({ "no": "type" }),
        ] {
            let read: Action = serde_json::from_value(odd.clone()).unwrap();
            assert_eq!(read, Action::Other(odd.clone()));
            assert_eq!(serde_json::to_value(&read).unwrap(), odd);
        }
    }

    #[test]
    fn templates_are_found_where_the_server_renders_them() {
        let run: Action = RunDeployment::selected(id(1))
            .parameters(&json!({
                "plain": "no template",
                "v1": "{{ event.id }}",
                "nested": { "list": ["{% if x %}y{% endif %}", 3] },
                "v2": { "__prefect_kind": "jinja", "template": "{{ flow_run.name }}" },
            }))
            .into();
        let mut found = run.templates();
        found.sort();
        assert_eq!(
            found,
            [
                ("parameters.nested.list[0]".to_string(), "{% if x %}y{% endif %}"),
                ("parameters.v1".to_string(), "{{ event.id }}"),
                ("parameters.v2".to_string(), "{{ flow_run.name }}"),
            ]
        );
        let notify: Action = SendNotification::new(id(2), "{{ x }").subject("plain").into();
        assert_eq!(notify.templates(), [("body".to_string(), "{{ x }")]);
        assert!(Action::DoNothing.templates().is_empty());
    }

    #[test]
    fn a_bad_parameters_value_is_held_for_sending() {
        let run: Action = RunDeployment::inferred().parameters(&[1, 2]).into();
        let invalid = run.invalid().unwrap().clone();
        assert!(
            crate::Error::from(invalid)
                .to_string()
                .contains("run-deployment parameters")
        );
        assert!(Action::from(RunDeployment::inferred()).invalid().is_none());
    }

    #[test]
    fn empty_parameters_are_no_parameters_when_compared() {
        let empty: Action = RunDeployment::selected(id(1)).parameters(&json!({})).into();
        let none: Action = RunDeployment::selected(id(1)).into();
        assert_ne!(empty, none);
        assert_eq!(empty.normalized(), none.normalized());
    }
}
