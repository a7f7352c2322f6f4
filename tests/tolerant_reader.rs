//! The tolerant reader: the unit tests of its generator steps (build/tolerant.rs), and real
//! answers of a Prefect 3.8.8 server changed the way a newer release or Prefect Cloud changes
//! them, decoded with the generated types.

#[allow(dead_code)]
#[path = "../build/tolerant.rs"]
mod tolerant;

mod common;

use prefect_client::types;
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
    let url = format!("{}{path}", common::server().await.api_url());
    let response = reqwest::get(&url).await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn post(path: &str, body: Value) -> Value {
    let url = format!("{}{path}", common::server().await.api_url());
    let response = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// Adds an unknown field to every object in `value`, at every level.
fn add_unknown_fields(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(add_unknown_fields);
            map.insert("field_from_a_newer_server".into(), json!({"nested": [1, "two"]}));
        }
        Value::Array(items) => items.iter_mut().for_each(add_unknown_fields),
        _ => {}
    }
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
    let automation = post(
        "/automations/",
        json!({
            "name": common::unique("tolerant"),
            "trigger": {"type": "event", "posture": "Reactive", "threshold": 1, "within": 0},
            "actions": [{"type": "do-nothing"}],
        }),
    )
    .await;
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
