//! The generated client against a real Prefect server: at least one operation of every tag,
//! with real data in the responses, so the generated types are proven to decode what the server
//! sends (not only empty lists).

mod common;

use common::{client, unique};
use prefect_client::{Error, types};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Builds a request type from JSON, as a user with a payload in hand would.
fn body<T: DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("request body matches the generated type")
}

/// Unwraps a generated call, showing the typed error on failure.
async fn ok<T>(result: Result<prefect_client::RawResponse<T>, prefect_client::RawError<()>>) -> T {
    match result {
        Ok(v) => v.into_inner(),
        Err(e) => panic!("{}", Error::from_generated(e).await),
    }
}

#[tokio::test]
async fn create_concurrency_limit_answers_201_and_decodes() {
    let client = client().await;
    let tag = unique("raw");
    let response = client
        .raw()
        .create_concurrency_limit(&types::ConcurrencyLimitCreate {
            tag: tag.clone(),
            concurrency_limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.into_inner().tag, tag);
}

#[tokio::test]
async fn flows_deployments_flow_runs_and_states() {
    let client = client().await;
    let raw = client.raw();
    let flow = ok(raw
        .create_flow(&body(json!({ "name": unique("flow"), "tags": ["smoke"] })))
        .await)
    .await;
    let flows = ok(raw.read_flows(&types::ReadFlowsBody::default()).await).await;
    assert!(flows.iter().any(|f| f.id == flow.id));

    let deployment = ok(raw
        .create_deployment(&body(
            json!({ "name": unique("dep"), "flow_id": flow.id, "parameters": { "x": 1 } }),
        ))
        .await)
    .await;
    let read = ok(raw.read_deployment(&deployment.id).await).await;
    assert_eq!(read.flow_id, flow.id);

    let run = ok(raw
        .create_flow_run_from_deployment(
            &deployment.id,
            &body(json!({ "parameters": { "x": 2 }, "tags": ["smoke"] })),
        )
        .await)
    .await;
    assert_eq!(run.deployment_id, Some(deployment.id));
    let runs = ok(raw.read_flow_runs(&types::ReadFlowRunsBody::default()).await).await;
    let found = runs
        .iter()
        .find(|r| r.id == run.id)
        .expect("created run is listed");
    assert_eq!(found.state_type, Some(types::StateType::Scheduled));
    let states = ok(raw.read_flow_run_states(&run.id).await).await;
    assert_eq!(states[0].type_, types::StateType::Scheduled);

    let task_run = ok(raw
        .create_task_run(&body(
            json!({ "name": "t", "task_key": "k", "dynamic_key": "0", "flow_run_id": run.id }),
        ))
        .await)
    .await;
    let task_runs = ok(raw.read_task_runs(&types::ReadTaskRunsBody::default()).await).await;
    assert!(task_runs.iter().any(|t| t.id == task_run.id));
    ok(raw.read_task_run_states(&task_run.id).await).await;
}

#[tokio::test]
async fn work_pools_queues_and_workers() {
    let client = client().await;
    let raw = client.raw();
    let name = unique("pool");
    let pool = ok(raw
        .create_work_pool(&body(json!({ "name": name, "type": "process" })))
        .await)
    .await;
    assert_eq!(pool.name.as_str(), name);
    let pools = ok(raw.read_work_pools(&types::ReadWorkPoolsBody::default()).await).await;
    assert!(pools.iter().any(|p| p.id == pool.id));
    let queues = ok(raw.read_work_queues(&types::ReadWorkQueuesBody::default()).await).await;
    assert!(
        queues.iter().any(|q| q.work_pool_id == Some(pool.id)),
        "the pool's default queue"
    );
    ok(raw.read_workers(&name, &types::ReadWorkersBody::default()).await).await;
}

#[tokio::test]
async fn variables_logs_and_artifacts() {
    let client = client().await;
    let raw = client.raw();
    let name = unique("var").replace('-', "_");
    let variable = ok(raw
        .create_variable(&body(json!({ "name": name, "value": { "a": [1, 2] } })))
        .await)
    .await;
    assert_eq!(
        serde_json::to_value(&variable.value).unwrap(),
        json!({ "a": [1, 2] })
    );
    let variables = ok(raw.read_variables(&types::ReadVariablesBody::default()).await).await;
    assert!(variables.iter().any(|v| v.name.as_str() == name));

    let message = unique("log line");
    ok(raw
        .create_logs(&vec![body(
            json!({ "name": "smoke", "level": 20, "message": message, "timestamp": chrono::Utc::now() }),
        )])
        .await)
    .await;
    let logs = ok(raw.read_logs(&types::ReadLogsBody::default()).await).await;
    assert!(logs.iter().any(|l| l.message == message));

    let key = unique("artifact");
    let artifact = ok(raw
        .create_artifact(&body(json!({ "key": key, "type": "markdown", "data": "# hi" })))
        .await)
    .await;
    let artifacts = ok(raw.read_artifacts(&types::ReadArtifactsBody::default()).await).await;
    assert!(artifacts.iter().any(|a| a.id == artifact.id));
}

#[tokio::test]
async fn events_and_automations_with_tagged_unions() {
    let client = client().await;
    let raw = client.raw();
    let event_name = unique("smoke.event");
    let event: types::Event = body(json!({
        "occurred": chrono::Utc::now(), "event": event_name, "id": uuid::Uuid::new_v4(),
        "resource": { "prefect.resource.id": "smoke.resource" }, "payload": { "k": "v" },
    }));
    ok(raw.create_events(&vec![event]).await).await;
    let filter: types::ReadEventsBody = body(json!({ "filter": { "event": { "name": [event_name] } } }));
    let mut seen = false;
    for _ in 0..40 {
        let page = ok(raw.read_events(&filter).await).await;
        if page.events.iter().any(|e| e.event == event_name) {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(seen, "emitted event read back");

    // A compound trigger must decode as the compound member of the union, not as an event trigger.
    let automation = ok(raw
        .create_automation(&body(json!({
            "name": unique("auto"),
            "trigger": { "type": "compound", "require": "all", "within": 60, "triggers": [
                { "type": "event", "expect": ["a.b"], "posture": "Reactive", "threshold": 1, "within": 0 }
            ] },
            "actions": [{ "type": "do-nothing" }],
        })))
        .await)
    .await;
    let automations = ok(raw.read_automations(&types::ReadAutomationsBody::default()).await).await;
    let read = automations
        .iter()
        .find(|a| a.id == automation.id)
        .expect("automation listed");
    assert!(
        matches!(read.trigger, types::AutomationTrigger::CompoundTriggerOutput(_)),
        "{:?}",
        read.trigger
    );
    assert!(
        matches!(read.actions[0], types::AutomationActionsItem::DoNothing(_)),
        "{:?}",
        read.actions[0]
    );
}

#[tokio::test]
async fn blocks_admin_and_the_rest() {
    let client = client().await;
    let raw = client.raw();
    let block_types = ok(raw.read_block_types(&types::ReadBlockTypesBody::default()).await).await;
    assert!(
        block_types.iter().any(|b| b.slug == "secret"),
        "system block types are registered"
    );
    let schemas = ok(raw
        .read_block_schemas(&types::ReadBlockSchemasBody::default())
        .await)
    .await;
    assert!(!schemas.is_empty());
    ok(raw
        .read_block_documents(&types::ReadBlockDocumentsBody::default())
        .await)
    .await;
    assert!(!ok(raw.read_available_block_capabilities().await).await.is_empty());
    assert_eq!(ok(raw.read_version().await).await, "3.8.8");
    assert_eq!(
        ok(raw.server_version().await).await,
        prefect_client::PREFECT_API_VERSION
    );
    ok(raw
        .read_saved_searches(&types::ReadSavedSearchesBody::default())
        .await)
    .await;
    ok(raw
        .read_task_workers(&types::ReadTaskWorkersBody::default())
        .await)
    .await;
    let v2 = ok(raw
        .create_concurrency_limit_v2(&body(json!({ "name": unique("gcl"), "limit": 2 })))
        .await)
    .await;
    let all = ok(raw
        .read_all_concurrency_limits_v2(&types::ReadAllConcurrencyLimitsV2Body::default())
        .await)
    .await;
    assert!(all.iter().any(|l| l.id == v2.id));
    let dup = raw
        .create_concurrency_limit_v2(&body(json!({ "name": v2.name, "limit": 2 })))
        .await
        .unwrap_err();
    assert!(Error::from_generated(dup).await.is_conflict());
}
