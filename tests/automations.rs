//! Automations end to end against the real server: every trigger and action kind written and
//! read back, automations shared with Prefect's Python client both ways, applies (created,
//! unchanged, updated), enabling and disabling, templates refused by the server's check before
//! anything is saved, kinds the SDK does not know kept and sent back, and Prefect's zombie-run
//! automation as one call.

mod common;

use std::time::Duration;

use common::proxy::FaultProxy;
use common::serving::python;
use common::stub::{Reply, Stub};
use common::{client, unique};
use futures_util::TryStreamExt;
use prefect_client::query::{AutomationFilter, AutomationFilterName, AutomationQuery};
use prefect_client::resources::Change;
use prefect_client::resources::automations::{
    Action, Automation, AutomationSpec, CallWebhook, ChangeFlowRunState, CompoundTrigger, EventTrigger,
    Require, ResourceSpec, RunDeployment, SendNotification, SequenceTrigger, Target, Trigger,
};
use prefect_client::types::StateType;
use prefect_client::{Client, Error, OptionalExt};
use serde_json::{Value, json};
use uuid::Uuid;

/// An event trigger with every field set.
fn full_event_trigger() -> EventTrigger {
    EventTrigger::reactive()
        .after(["prefect.flow-run.Pending"])
        .expect(["prefect.flow-run.Failed", "prefect.flow-run.Crashed"])
        .matching("prefect.resource.id", ["prefect.flow-run.*"])
        .matching("prefect.state-name", ["Failed", "Crashed"])
        .related_spec(
            ResourceSpec::new()
                .label("prefect.resource.role", ["flow"])
                .label("prefect.resource.name", ["etl", "load"]),
        )
        .matching_related("prefect.resource.id", ["prefect.tag.nightly"])
        .for_each(["prefect.resource.id", "related:flow:prefect.resource.id"])
        .threshold(3)
        .within(Duration::from_secs(3600))
}

/// Every action kind the SDK knows, across the three lists of actions, under a compound
/// trigger holding an event trigger and a sequence. Disabled: it never acts.
fn every_kind(name: &str) -> AutomationSpec {
    let id = |n: u128| Uuid::from_u128(n);
    let trigger = CompoundTrigger::new(Require::AtLeast(2))
        .trigger(full_event_trigger())
        .trigger(
            SequenceTrigger::new()
                .trigger(EventTrigger::reactive().expect(["extract.done"]))
                .trigger(
                    EventTrigger::proactive()
                        .expect(["load.done"])
                        .within(Duration::from_secs(30)),
                )
                .within(Duration::from_secs(120)),
        );
    AutomationSpec::new(name, trigger)
        .description("every kind of action")
        .enabled(false)
        .tags(["sdk-test", "kinds"])
        .action(Action::DoNothing)
        .action(
            RunDeployment::selected(id(1))
                .parameters(&json!({ "day": "{{ event.occurred }}", "rows": 5 }))
                .schedule_after(Duration::from_secs(90)),
        )
        .action(RunDeployment::inferred().job_variables(&json!({ "image": "etl:2" })))
        .action(Action::PauseDeployment(Target::Selected(id(1))))
        .action(Action::ResumeDeployment(Target::Inferred))
        .action(
            ChangeFlowRunState::new(StateType::Failed)
                .name("Stuck")
                .message("no progress")
                .force(true),
        )
        .action(Action::CancelFlowRun)
        .action(Action::SuspendFlowRun)
        .action(Action::ResumeFlowRun)
        .action(Action::DeleteFlowRun)
        .on_trigger(Action::PauseWorkPool(Target::Selected(id(2))))
        .on_trigger(Action::ResumeWorkPool(Target::Inferred))
        .on_trigger(Action::PauseWorkQueue(Target::Selected(id(3))))
        .on_trigger(Action::ResumeWorkQueue(Target::Inferred))
        .on_resolve(Action::PauseAutomation(Target::Selected(id(4))))
        .on_resolve(Action::ResumeAutomation(Target::Inferred))
        .on_resolve(
            SendNotification::new(id(5), "{{ flow_run.name }} failed").subject("ETL: {{ flow_run.name }}"),
        )
        .on_resolve(CallWebhook::new(id(6)).payload(r#"{"run": "{{ flow_run.id }}"}"#))
}

/// The automations named `name`, as `list_page` finds them.
fn named(name: &str) -> AutomationQuery {
    AutomationQuery {
        automations: Some(AutomationFilter {
            name: Some(AutomationFilterName {
                any: Some(vec![name.to_string()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_action_and_trigger_kind_is_created_and_read_back_equal() {
    let client = client().await;
    let automations = client.automations();
    let specs = [
        every_kind(&unique("kinds")),
        AutomationSpec::new(&unique("event"), full_event_trigger()).enabled(false),
        AutomationSpec::new(
            &unique("compound"),
            CompoundTrigger::new(Require::Any)
                .trigger(EventTrigger::reactive().expect(["a.b"]))
                .trigger(EventTrigger::reactive().expect(["c.d"]))
                .within(Duration::from_secs(300)),
        )
        .enabled(false)
        .action(Action::DoNothing),
        AutomationSpec::new(
            &unique("sequence"),
            SequenceTrigger::new()
                .trigger(EventTrigger::reactive().expect(["a.b"]))
                .trigger(
                    CompoundTrigger::new(Require::All).trigger(EventTrigger::reactive().expect(["c.d"])),
                ),
        )
        .enabled(false)
        .action(Action::DoNothing),
    ];
    for spec in &specs {
        let created = automations.create(spec).await.unwrap();
        assert_eq!(&created.spec, spec, "as created");
        let read = automations.get(created.id).await.unwrap();
        assert_eq!(&read.spec, spec, "as read");
        assert_eq!(read.id, created.id);
        assert!(read.created.is_some() && read.updated.is_some());
        assert_eq!(automations.get_by_name(&spec.name).await.unwrap().id, created.id);
        let listed = automations.list_page(&named(&spec.name)).await.unwrap();
        assert_eq!(listed, std::slice::from_ref(&read));
    }
    let all: Vec<Automation> = automations
        .stream(Default::default())
        .try_collect()
        .await
        .unwrap();
    for spec in &specs {
        assert_eq!(
            all.iter().filter(|a| a.spec.name == spec.name).count(),
            1,
            "{}",
            spec.name
        );
    }
}

#[tokio::test]
async fn an_automation_made_by_prefect_s_python_client_reads_as_the_same_spec() {
    let client = client().await;
    let name = unique("from-python");
    let (deployment, block) = (Uuid::new_v4(), Uuid::new_v4());
    let script = r#"
import sys, uuid
from datetime import timedelta
from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, PauseWorkQueue, RunDeployment, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

automation = Automation(
    name=sys.argv[1],
    description="made by Python",
    enabled=False,
    tags=["py"],
    trigger=EventTrigger(
        after={"prefect.flow-run.Pending"},
        expect={"prefect.flow-run.Running", "prefect.flow-run.Completed"},
        match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
        match_related=ResourceSpecification(
            {"prefect.resource.role": "flow", "prefect.resource.name": ["etl", "load"]}
        ),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=2,
        within=timedelta(seconds=45),
    ),
    actions=[
        ChangeFlowRunState(state=StateType.FAILED, name="Stuck", message="no progress"),
        RunDeployment(
            source="selected",
            deployment_id=uuid.UUID(sys.argv[2]),
            parameters={"who": "{{ flow_run.name }}"},
        ),
        SendNotification(block_document_id=uuid.UUID(sys.argv[3]), body="{{ flow_run.name }} is stuck"),
    ],
    actions_on_resolve=[PauseWorkQueue(source="inferred")],
)
print(automation.create().id)
"#;
    let out = python(
        client.api_url(),
        script,
        &[&name, &deployment.to_string(), &block.to_string()],
    )
    .await;
    let id: Uuid = out.trim().parse().unwrap();
    let expected = AutomationSpec::new(
        &name,
        EventTrigger::proactive()
            .after(["prefect.flow-run.Pending"])
            .expect(["prefect.flow-run.Running", "prefect.flow-run.Completed"])
            .matching("prefect.resource.id", ["prefect.flow-run.*"])
            .related_spec(
                ResourceSpec::new()
                    .label("prefect.resource.role", ["flow"])
                    .label("prefect.resource.name", ["etl", "load"]),
            )
            .for_each(["prefect.resource.id"])
            .threshold(2)
            .within(Duration::from_secs(45)),
    )
    .description("made by Python")
    .enabled(false)
    .tags(["py"])
    .action(
        ChangeFlowRunState::new(StateType::Failed)
            .name("Stuck")
            .message("no progress"),
    )
    .action(RunDeployment::selected(deployment).parameters(&json!({ "who": "{{ flow_run.name }}" })))
    .action(SendNotification::new(block, "{{ flow_run.name }} is stuck"))
    .on_resolve(Action::PauseWorkQueue(Target::Inferred));
    let read = client.automations().get(id).await.unwrap();
    assert_eq!(read.spec, expected);
    // Applying the same spec finds nothing to change in what Python made.
    let applied = client.automations().apply(&expected).await.unwrap();
    assert_eq!((applied.change, applied.object.id), (Change::Unchanged, id));
}

#[tokio::test]
async fn an_automation_made_by_the_sdk_reads_in_prefect_s_python_client_with_the_same_fields() {
    let client = client().await;
    let spec = every_kind(&unique("to-python"));
    let created = client.automations().create(&spec).await.unwrap();
    let script = r#"
import json, sys, uuid
from prefect.automations import Automation

automation = Automation.read(id=uuid.UUID(sys.argv[1]))
actions = automation.actions + automation.actions_on_trigger + automation.actions_on_resolve
print(json.dumps({
    "classes": [type(automation.trigger).__name__]
        + [type(t).__name__ for t in automation.trigger.triggers]
        + [type(a).__name__ for a in actions],
    "automation": automation.model_dump(mode="json"),
}))
"#;
    let out = python(client.api_url(), script, &[&created.id.to_string()]).await;
    let seen: Value = serde_json::from_str(out.trim()).unwrap();
    // Python read each member as the class of its kind...
    assert_eq!(
        seen["classes"],
        json!([
            "CompoundTrigger",
            "EventTrigger",
            "SequenceTrigger",
            "DoNothing",
            "RunDeployment",
            "RunDeployment",
            "PauseDeployment",
            "ResumeDeployment",
            "ChangeFlowRunState",
            "CancelFlowRun",
            "SuspendFlowRun",
            "ResumeFlowRun",
            "DeleteFlowRun",
            "PauseWorkPool",
            "ResumeWorkPool",
            "PauseWorkQueue",
            "ResumeWorkQueue",
            "PauseAutomation",
            "ResumeAutomation",
            "SendNotification",
            "CallWebhook"
        ])
    );
    // ...with the fields the SDK sent.
    let python_s: Automation = serde_json::from_value(seen["automation"].clone()).unwrap();
    assert_eq!(python_s.id, created.id);
    assert_eq!(python_s.spec, spec);
}

#[tokio::test]
async fn apply_creates_then_leaves_alone_then_updates_and_update_replaces_every_field() {
    let client = client().await;
    let automations = client.automations();
    let name = unique("apply");
    let spec = AutomationSpec::new(
        &name,
        // A proactive window of 0 is stored as 10 s: still the same spec.
        EventTrigger::proactive()
            .expect(["sdk.test.beat", "sdk.test.done"])
            .matching("prefect.resource.id", ["sdk.test.*", "sdk.other.*"]),
    )
    .enabled(false)
    .tags(["b", "a"])
    .action(RunDeployment::inferred().parameters(&json!({})));

    let first = automations.apply(&spec).await.unwrap();
    assert_eq!(first.change, Change::Created);
    let written = automations.get(first.object.id).await.unwrap().updated;
    let second = automations.apply(&spec).await.unwrap();
    assert_eq!(second.change, Change::Unchanged);
    assert_eq!(second.object.id, first.object.id);
    let after = automations.get(first.object.id).await.unwrap().updated;
    assert_eq!(after, written, "nothing was written");

    let changed = spec
        .clone()
        .description("now described")
        .action(ChangeFlowRunState::new(StateType::Cancelled));
    let third = automations.apply(&changed).await.unwrap();
    assert_eq!(third.change, Change::Updated);
    assert_eq!(third.object.id, first.object.id);
    assert_eq!(third.object.spec.description, "now described");
    assert_eq!(third.object.spec.actions.len(), 2);
    assert_eq!(
        automations.apply(&changed).await.unwrap().change,
        Change::Unchanged
    );

    // A full update: what the spec leaves empty is emptied on the server too.
    let emptied =
        AutomationSpec::new(&name, EventTrigger::reactive().expect(["sdk.test.done"])).enabled(false);
    automations.update(first.object.id, &emptied).await.unwrap();
    let read = automations.get(first.object.id).await.unwrap();
    assert_eq!(read.spec, emptied);
    assert!(read.spec.tags.is_empty() && read.spec.actions.is_empty());
}

#[tokio::test]
async fn two_automations_of_one_name_are_refused_by_apply_and_get_by_name() {
    let client = client().await;
    let automations = client.automations();
    let name = unique("twice");
    let spec = AutomationSpec::new(&name, EventTrigger::reactive().expect(["sdk.test.x"])).enabled(false);
    let one = automations.create(&spec).await.unwrap();
    let two = automations.create(&spec).await.unwrap();
    for err in [
        automations
            .apply(&spec.clone().description("changed"))
            .await
            .unwrap_err(),
        automations.get_by_name(&name).await.unwrap_err(),
    ] {
        let Error::AmbiguousName {
            what,
            name: shared,
            ids,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*what, shared.as_str()), ("automation", name.as_str()));
        let mut ids = ids.clone();
        ids.sort();
        let mut expected = vec![one.id, two.id];
        expected.sort();
        assert_eq!(ids, expected);
        assert!(
            err.is_ambiguous_name() && err.to_string().contains("delete or rename"),
            "{err}"
        );
    }
    assert!(
        automations.get(one.id).await.unwrap().spec.description.is_empty(),
        "nothing written"
    );
    let missing = automations.get_by_name(&unique("none")).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    assert!(
        automations
            .get_by_name(&unique("none"))
            .await
            .optional()
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn disable_and_enable_turn_an_automation_off_and_on() {
    let client = client().await;
    let automations = client.automations();
    let spec = AutomationSpec::new(
        &unique("switch"),
        EventTrigger::reactive().expect(["sdk.test.never"]),
    )
    .action(Action::DoNothing);
    let created = automations.create(&spec).await.unwrap();
    assert!(created.spec.enabled);
    automations.disable(created.id).await.unwrap();
    assert!(!automations.get(created.id).await.unwrap().spec.enabled);
    automations.enable(created.id).await.unwrap();
    assert!(automations.get(created.id).await.unwrap().spec.enabled);
    automations.delete(created.id).await.unwrap();
    for err in [
        automations.get(created.id).await.unwrap_err(),
        automations.disable(created.id).await.unwrap_err(),
        automations.delete(created.id).await.unwrap_err(),
    ] {
        assert!(err.is_not_found(), "{err:?}");
    }
}

/// Asserts `err` is the template check's refusal of `place`, and that nothing named `name`
/// was saved.
async fn refused_unsaved(client: &Client, err: Error, place: &str, name: &str) {
    assert!(
        err.is_client_side(),
        "refused by the template check, not the create: {err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("invalid automation template:")
            && text.contains(place)
            && text.contains("line 1")
            && text.contains("nothing was saved"),
        "{text}"
    );
    let saved = client.automations().list_page(&named(name)).await.unwrap();
    assert!(saved.is_empty(), "{saved:?}");
}

#[tokio::test]
async fn a_bad_template_is_refused_with_the_server_s_message_and_nothing_is_saved() {
    let client = client().await;
    let automations = client.automations();
    let block = Uuid::new_v4();
    let trigger = || EventTrigger::reactive().expect(["sdk.test.never"]);

    let name = unique("bad-body");
    let bad_body = AutomationSpec::new(&name, trigger())
        .enabled(false)
        .action(SendNotification::new(block, "{{ flow_run.name "));
    let err = automations.create(&bad_body).await.unwrap_err();
    refused_unsaved(&client, err, "actions[0] (send-notification) body", &name).await;
    let err = automations.apply(&bad_body).await.unwrap_err();
    refused_unsaved(&client, err, "actions[0] (send-notification) body", &name).await;

    let name = unique("bad-payload");
    let bad_payload = AutomationSpec::new(&name, trigger())
        .enabled(false)
        .action(Action::DoNothing)
        .on_resolve(CallWebhook::new(block).payload("{% for x in y %}"));
    let err = automations.apply(&bad_payload).await.unwrap_err();
    refused_unsaved(
        &client,
        err,
        "actions_on_resolve[0] (call-webhook) payload",
        &name,
    )
    .await;

    let name = unique("bad-parameter");
    let bad_parameter = AutomationSpec::new(&name, trigger())
        .enabled(false)
        .action(RunDeployment::inferred().parameters(&json!({ "day": { "of": "{{ event.occurred | }}" } })));
    let err = automations.create(&bad_parameter).await.unwrap_err();
    refused_unsaved(
        &client,
        err,
        "actions[0] (run-deployment) parameters.day.of",
        &name,
    )
    .await;

    // An update is checked too, and leaves the automation as it was.
    let good = AutomationSpec::new(&unique("kept"), trigger())
        .enabled(false)
        .action(SendNotification::new(block, "{{ flow_run.name }}"));
    let created = automations.create(&good).await.unwrap();
    let broken = good.clone().action(SendNotification::new(block, "{% if %}"));
    let err = automations.update(created.id, &broken).await.unwrap_err();
    assert!(
        err.is_client_side() && err.to_string().contains("actions[1] (send-notification) body"),
        "{err}"
    );
    assert_eq!(automations.get(created.id).await.unwrap().spec, good);
}

#[tokio::test]
async fn a_spec_the_server_would_refuse_is_refused_before_anything_is_sent() {
    let client = client().await;
    let before = client.requests_sent();
    let short = AutomationSpec::new(
        &unique("short"),
        EventTrigger::proactive().within(Duration::from_secs(5)),
    );
    let err = client.automations().apply(&short).await.unwrap_err();
    assert!(
        err.is_client_side() && err.to_string().contains("at least 10 s"),
        "{err}"
    );
    let bad = AutomationSpec::new(&unique("bad"), EventTrigger::reactive())
        .action(RunDeployment::inferred().parameters(&vec![1, 2]));
    let err = client.automations().create(&bad).await.unwrap_err();
    assert!(
        err.is_client_side() && err.to_string().contains("JSON object"),
        "{err}"
    );
    assert_eq!(client.requests_sent(), before);
}

/// An action only Prefect Cloud has.
fn cloud_action() -> Value {
    json!({ "type": "declare-incident", "severity": "high", "labels": { "team": ["data"] } })
}

/// A trigger only Prefect Cloud has.
fn cloud_trigger() -> Value {
    json!({
        "type": "metric",
        "posture": "Metric",
        "metric": { "name": "lateness", "threshold": 60.0, "operator": ">", "range": 300.0, "firing_for": 300.0 }
    })
}

/// What Prefect Cloud (or a newer server) might answer: an action and, in a compound trigger,
/// a trigger of kinds the SDK does not know.
fn add_unknown_kinds(body: &mut Value) {
    if let Some(actions) = body.get_mut("actions").and_then(Value::as_array_mut) {
        actions.push(cloud_action());
    }
    if let Some(triggers) = body
        .get_mut("trigger")
        .and_then(|trigger| trigger.get_mut("triggers"))
        .and_then(Value::as_array_mut)
    {
        triggers.push(cloud_trigger());
    }
}

#[tokio::test]
async fn kinds_the_sdk_does_not_know_are_read_and_sent_back_unchanged() {
    let client = client().await;
    let spec = AutomationSpec::new(
        &unique("cloud"),
        CompoundTrigger::new(Require::Any).trigger(EventTrigger::reactive().expect(["sdk.test.never"])),
    )
    .enabled(false)
    .action(Action::DoNothing);
    let created = client.automations().create(&spec).await.unwrap();

    // Read through a proxy that adds what Prefect Cloud would send.
    let proxy = FaultProxy::start_rewriting(client.api_url(), Some(add_unknown_kinds)).await;
    let through = Client::new(&proxy.api_url).unwrap();
    let read = through.automations().get(created.id).await.unwrap();
    assert_eq!(
        read.spec.actions,
        [Action::DoNothing, Action::Other(cloud_action())]
    );
    assert_eq!(read.spec.actions[1].kind(), "declare-incident");
    let Trigger::Compound(compound) = &read.spec.trigger else {
        panic!("{:?}", read.spec.trigger)
    };
    assert_eq!(compound.triggers[1], Trigger::Other(cloud_trigger()));

    // Sent back (as an update sends it), both are in the body exactly as they came.
    let stub = Stub::start(vec![Reply::json(204, "")]).await;
    let to_stub = Client::new(&stub.url).unwrap();
    to_stub
        .automations()
        .update(created.id, &read.spec)
        .await
        .unwrap();
    let seen = stub.seen.lock().unwrap().clone();
    let put = seen
        .iter()
        .find(|s| s.method == "PUT")
        .expect("the update reached the stub");
    assert_eq!(put.path, format!("/api/automations/{}", created.id));
    let body: Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(body["actions"][1], cloud_action());
    assert_eq!(body["trigger"]["triggers"][1], cloud_trigger());
}

#[tokio::test]
async fn prefect_s_zombie_run_automation_is_one_call() {
    let client = client().await;
    let name = unique("Crash zombie flows");
    let spec = AutomationSpec::crash_zombie_flow_runs(&name);
    let applied = client.automations().apply(&spec).await.unwrap();
    assert_eq!(applied.change, Change::Created);
    let Trigger::Event(trigger) = &applied.object.spec.trigger else {
        panic!("{:?}", applied.object.spec.trigger)
    };
    assert_eq!(trigger.within, Duration::from_secs(540));
    assert_eq!(
        trigger.for_each.iter().collect::<Vec<_>>(),
        ["prefect.resource.id"]
    );
    assert_eq!(
        applied.object.spec.actions,
        [Action::from(ChangeFlowRunState::new(StateType::Crashed).message(
            "Flow run marked as crashed due to missing heartbeats."
        ))]
    );
    // The window as a test wants it, changed in place.
    let ten = spec.within(Duration::from_secs(10));
    let applied = client.automations().apply(&ten).await.unwrap();
    assert_eq!(applied.change, Change::Updated);
    assert_eq!(applied.object.spec, ten);
    // Prefect's Python client reads it as its own documented automation.
    let script = r#"
import sys, uuid
from datetime import timedelta
from prefect.automations import Automation
from prefect.events.schemas.automations import Posture

a = Automation.read(id=uuid.UUID(sys.argv[1]))
t = a.trigger
assert t.posture == Posture.Proactive, t.posture
assert t.after == {"prefect.flow-run.heartbeat"}, t.after
assert t.expect == {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"}, t.expect
assert dict(t.match.items()) == {"prefect.resource.id": ["prefect.flow-run.*"]}, t.match
assert t.for_each == {"prefect.resource.id"} and t.threshold == 1, (t.for_each, t.threshold)
assert t.within == timedelta(seconds=10), t.within
(action,) = a.actions
assert action.type == "change-flow-run-state" and action.state.value == "CRASHED", action
print("ok")
"#;
    let out = python(client.api_url(), script, &[&applied.object.id.to_string()]).await;
    assert_eq!(out.trim(), "ok");
    client.automations().delete(applied.object.id).await.unwrap();
}
