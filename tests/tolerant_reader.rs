//! The tolerant reader: the unit tests of its generator steps (build/tolerant.rs), and real
//! answers of a Prefect 3.8.8 server changed the way a newer release or Prefect Cloud changes
//! them, decoded with the generated types.

#[allow(dead_code)]
#[path = "../build/tolerant.rs"]
mod tolerant;

mod common;

use common::collect_all;
use common::proxy::FaultProxy;
use prefect_client::{Client, OptionalExt, types};
use serde_json::{Value, json};

fn parse_item<T: syn::parse::Parse>(code: &str) -> T {
    syn::parse_str(code).unwrap()
}

fn text(item: &impl quote::ToTokens) -> String {
    item.to_token_stream().to_string()
}

#[test]
fn structs_stop_denying_unknown_fields_and_keep_their_other_serde_settings() {
    let mut only: syn::ItemStruct = parse_item("#[serde(deny_unknown_fields)] pub struct A { x: i64 }");
    tolerant::ignore_unknown_fields(&mut only);
    assert!(!text(&only).contains("serde"), "{}", text(&only));
    let mut mixed: syn::ItemStruct =
        parse_item("#[serde(deny_unknown_fields, rename_all = \"snake_case\")] pub struct B { x: i64 }");
    tolerant::ignore_unknown_fields(&mut mixed);
    let code = text(&mixed);
    assert!(
        !code.contains("deny_unknown_fields") && code.contains("rename_all"),
        "{code}"
    );
}

#[test]
fn string_enums_of_two_or_more_values_gain_an_unknown_variant_and_lose_copy() {
    let mut open: syn::ItemEnum = parse_item(
        "#[derive(Clone, Copy, Debug)] pub enum S { #[serde(rename = \"A\")] A, #[serde(rename = \"B\")] B }",
    );
    assert!(tolerant::open_string_enums(&mut open));
    let code = text(&open);
    assert!(code.contains("Unknown (:: std :: string :: String)"), "{code}");
    assert!(!code.contains("Copy"), "{code}");
    // A constant (one value) tells union members apart: it stays closed.
    let mut constant: syn::ItemEnum =
        parse_item("pub enum T { #[serde(rename = \"do-nothing\")] DoNothing }");
    assert!(!tolerant::open_string_enums(&mut constant));
    assert!(!text(&constant).contains("Unknown"));
}

#[test]
fn unions_gain_an_unknown_member_and_display_writes_it() {
    let mut union: syn::ItemEnum =
        parse_item("#[derive(Clone, Debug, Eq, Hash)] #[serde(untagged)] pub enum U { A(A), B(B) }");
    assert!(tolerant::open_unions(&mut union));
    let code = text(&union);
    assert!(code.contains("Unknown (:: serde_json :: Value)"), "{code}");
    assert!(!code.contains("Hash") && !code.contains("Eq"), "{code}");
    let mut plain: syn::ItemEnum = parse_item("pub enum P { A, B }");
    assert!(!tolerant::open_unions(&mut plain), "not a union");

    let mut display: syn::ItemImpl = parse_item(
        "impl ::std::fmt::Display for U { fn fmt(&self, f: &mut F) -> R { match self { Self::A(x) => x.fmt(f), Self::B(x) => x.fmt(f) } } }",
    );
    tolerant::display_unknown(&mut display, &["U".to_string()]);
    assert!(
        text(&display).contains("Self :: Unknown (value)"),
        "{}",
        text(&display)
    );
    let mut other: syn::ItemImpl = parse_item(
        "impl ::std::fmt::Display for V { fn fmt(&self, f: &mut F) -> R { match *self { Self::A => f.write_str(\"A\") } } }",
    );
    tolerant::display_unknown(&mut other, &["U".to_string()]);
    assert!(!text(&other).contains("Unknown"), "only opened enums");
}

#[test]
fn unknown_enum_values_are_kept_and_written_back_unchanged() {
    let state: types::StateType = serde_json::from_value(json!("SUSPENDED")).unwrap();
    assert_eq!(state, types::StateType::Unknown("SUSPENDED".into()));
    assert_eq!(state.to_string(), "SUSPENDED");
    assert_eq!(serde_json::to_value(&state).unwrap(), json!("SUSPENDED"));
    let known: types::StateType = serde_json::from_value(json!("RUNNING")).unwrap();
    assert_eq!(known, types::StateType::Running);
    assert!(!prefect_client::resources::flow_runs::is_final(&state));
}

/// GETs `path` from the real server as raw JSON.
async fn raw(path: &str) -> Value {
    send(reqwest::Method::GET, path, None).await
}

/// POSTs `body` to the real server, raw JSON in and out.
async fn post(path: &str, body: Value) -> Value {
    send(reqwest::Method::POST, path, Some(body)).await
}

/// One raw request, sent again while SQLite refuses concurrent writes (503).
async fn send(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", common::server().await.api_url());
    let http = reqwest::Client::new();
    for _ in 0..50 {
        let mut request = http.request(method.clone(), &url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        assert!(response.status().is_success(), "{path}: {}", response.status());
        return response.json().await.unwrap();
    }
    panic!("{path}: the server stayed unavailable")
}

/// Creates an automation that never runs (disabled, matching nothing: an enabled empty trigger
/// reacts to every event) with one do-nothing action; returns the server's answer.
async fn create_quiet_automation() -> Value {
    post(
        "/automations/",
        json!({
            "name": common::unique("tolerant"),
            "enabled": false,
            "trigger": {
                "type": "event",
                "match": {"prefect.resource.id": "no-such-resource"},
                "expect": ["no.such.event"],
                "posture": "Reactive",
                "threshold": 1,
                "within": 0,
            },
            "actions": [{"type": "do-nothing"}],
        }),
    )
    .await
}

/// Calls `change` on every object in `value`, at every level (inner objects first).
fn for_each_object(value: &mut Value, change: &impl Fn(&mut serde_json::Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(|v| for_each_object(v, change));
            change(map);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| for_each_object(v, change)),
        _ => {}
    }
}

/// Adds an unknown field to every object in `value`, at every level.
fn add_unknown_fields(value: &mut Value) {
    for_each_object(value, &|map| {
        // A string: maps of labels (event resources) take only strings.
        map.insert("field_from_a_newer_server".into(), json!("new"));
    });
}

#[tokio::test]
async fn real_answers_changed_as_a_newer_server_would_still_decode() {
    let client = common::client().await;
    let flow = client.flows().create(&common::unique("tolerant")).await.unwrap();

    // A deployment with a cron schedule, an unknown field at every level (schedules included).
    let deployment = post(
        "/deployments/",
        json!({
            "name": common::unique("tolerant"),
            "flow_id": flow.id,
            "schedules": [{"schedule": {"cron": "0 * * * *"}}],
        }),
    )
    .await;
    let mut answer = raw(&format!("/deployments/{}", deployment["id"].as_str().unwrap())).await;
    add_unknown_fields(&mut answer);
    let decoded: Vec<types::DeploymentResponse> = serde_json::from_value(json!([answer])).unwrap();
    assert!(
        matches!(
            decoded[0].schedules[0].schedule,
            types::DeploymentScheduleSchedule::CronSchedule(_)
        ),
        "{:?}",
        decoded[0].schedules[0].schedule
    );

    // A flow run in a state type this SDK does not know.
    let run = post("/flow_runs/", json!({"flow_id": flow.id})).await;
    let mut answer = raw(&format!("/flow_runs/{}", run["id"].as_str().unwrap())).await;
    answer["state_type"] = json!("SUSPENDED");
    answer["state"]["type"] = json!("SUSPENDED");
    add_unknown_fields(&mut answer);
    let runs: Vec<types::FlowRunResponse> = serde_json::from_value(json!([answer])).unwrap();
    assert_eq!(
        runs[0].state_type,
        Some(types::StateType::Unknown("SUSPENDED".into()))
    );

    // An automation with an action type (and a trigger type) only Prefect Cloud has.
    let automation = create_quiet_automation().await;
    let mut answer = raw(&format!("/automations/{}", automation["id"].as_str().unwrap())).await;
    answer["actions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "call-cloud-only-thing", "target": 7}));
    answer["trigger"] = json!({"type": "metric", "metric": {"name": "lateness"}});
    add_unknown_fields(&mut answer);
    let automations: Vec<types::Automation> = serde_json::from_value(json!([answer])).unwrap();
    let actions = &automations[0].actions;
    assert!(
        matches!(actions[0], types::AutomationActionsItem::DoNothing(_)),
        "{actions:?}"
    );
    let types::AutomationActionsItem::Unknown(unknown) = &actions[1] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        unknown["type"], "call-cloud-only-thing",
        "reachable by the caller"
    );
    assert!(
        matches!(automations[0].trigger, types::AutomationTrigger::Unknown(_)),
        "{:?}",
        automations[0].trigger
    );
}

/// What a newer server might send: an unknown field in every object, flow-run states of an
/// unknown type, and an unknown action in every automation.
fn as_a_newer_server(value: &mut Value) {
    add_unknown_fields(value);
    newer_values(value);
}

/// Flow-run states of an unknown type and an unknown action in every automation, at every level.
fn newer_values(value: &mut Value) {
    for_each_object(value, &|map| {
        if map.get("state_type").is_some_and(Value::is_string) {
            map.insert("state_type".into(), json!("SUSPENDED"));
        }
        if let Some(Value::Object(state)) = map.get_mut("state")
            && state.get("type").is_some_and(Value::is_string)
        {
            state.insert("type".into(), json!("SUSPENDED"));
        }
        if let Some(Value::Array(actions)) = map.get_mut("actions") {
            actions.push(json!({"type": "call-cloud-only-thing", "target": 7}));
        }
    });
}

#[tokio::test]
async fn every_read_path_decodes_what_a_newer_server_sends() {
    let direct = common::client().await;
    // Something of every kind to read back.
    let flow = direct.flows().create(&common::unique("newer")).await.unwrap();
    let deployment = direct
        .deployments()
        .create(flow.id, &common::unique("newer"))
        .await
        .unwrap();
    let run = post("/flow_runs/", json!({"flow_id": flow.id})).await;
    let run_id: uuid::Uuid = run["id"].as_str().unwrap().parse().unwrap();
    let tag = common::unique("newer");
    direct.concurrency_limits().create(&tag, 1).await.unwrap();
    let global = common::unique("newer");
    common::create_global_limit(&direct, &global, 1).await;
    let variable = common::unique("newer").replace('-', "_");
    direct.variables().set(&variable, &json!({"a": 1})).await.unwrap();
    create_quiet_automation().await;

    let proxy = FaultProxy::start_rewriting(common::server().await.api_url(), Some(as_a_newer_server)).await;
    let client = Client::new(&proxy.api_url).unwrap();

    client.flows().get(flow.id).await.unwrap();
    client.flows().get_by_name(&flow.name).await.unwrap();
    collect_all(client.flows().stream(Default::default())).await;
    let read = client.deployments().get(deployment.id).await.unwrap();
    assert_eq!(read.id, deployment.id);
    collect_all(client.deployments().stream(Default::default())).await;
    let read = client.flow_runs().get(run_id).await.unwrap();
    assert_eq!(
        read.state_type,
        Some(types::StateType::Unknown("SUSPENDED".into())),
        "the unknown state type is kept"
    );
    let runs: Vec<_> = collect_all(client.flow_runs().stream(Default::default())).await;
    assert!(!runs.is_empty());
    client.concurrency_limits().get_by_tag(&tag).await.unwrap();
    collect_all(client.concurrency_limits().stream(Default::default())).await;
    client
        .global_concurrency_limits()
        .get_by_name(&global)
        .await
        .unwrap();
    collect_all(client.global_concurrency_limits().stream(Default::default())).await;
    client.variables().get_by_name(&variable).await.unwrap();
    collect_all(client.variables().stream(Default::default())).await;
    collect_all(client.logs().stream(Default::default())).await;
    collect_all(client.artifacts().stream(Default::default())).await;
    client.events().list_page(&Default::default()).await.unwrap();
    collect_all(client.work_pools().stream(Default::default())).await;
    assert!(
        client
            .work_pools()
            .get_by_name("no-such-pool")
            .await
            .optional()
            .unwrap()
            .is_none()
    );

    // A sweep of generated reads the handles do not cover.
    let raw = client.raw();
    let automations = raw
        .read_automations(&Default::default())
        .await
        .unwrap()
        .into_inner();
    let unknown = automations
        .iter()
        .flat_map(|a| &a.actions)
        .filter(|action| matches!(action, types::AutomationActionsItem::Unknown(_)))
        .count();
    assert!(unknown >= 1, "the unknown action is reachable");
    raw.read_task_runs(&Default::default()).await.unwrap();
    raw.read_block_types(&Default::default()).await.unwrap();
    raw.read_work_queues(&Default::default()).await.unwrap();
    raw.read_flow_run_states(&run_id).await.unwrap();
    raw.read_deployment_schedules(&deployment.id).await.unwrap();
    assert!(
        proxy.forwarded() > 20,
        "the reads went through the rewriting proxy"
    );
}
