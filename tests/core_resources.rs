//! The core resource handles end to end against the real server: flows, deployments (run and
//! wait), flow runs, variables, logs, artifacts, work pools and queues, events, and streams over
//! more items than one page.

mod common;

use std::time::Duration;

use common::{
    client, collect_all, eventually, is_client_side, is_not_found, limit_of, runs_of_deployment, unique,
};
use futures_util::{StreamExt, TryStreamExt};
use prefect_client::resources::logs::{LogEntry, LogLevel};
use prefect_client::types::{self, SetStateStatus, StateType};
use prefect_client::{Error, OptionalExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[tokio::test]
async fn flows_create_read_and_list() {
    let client = client().await;
    let name = unique("flow");
    let flow = client.flows().create(&name).await.unwrap();
    assert_eq!(
        client.flows().create(&name).await.unwrap().id,
        flow.id,
        "upsert by name"
    );
    assert_eq!(client.flows().get(flow.id).await.unwrap().id, flow.id);
    assert_eq!(client.flows().get_by_name(&name).await.unwrap().id, flow.id);
    let all: Vec<types::Flow> = collect_all(client.flows().stream(Default::default())).await;
    assert!(all.iter().any(|f| f.id == flow.id));
    assert!(is_not_found(client.flows().get_by_name(&unique("missing")).await));
}

#[tokio::test]
async fn a_stream_pages_through_more_items_than_one_page() {
    let client = client().await;
    let prefix = unique("paged");
    let total = 230;
    futures_util::stream::iter(0..total)
        .map(|i| {
            let (client, name) = (client.clone(), format!("{prefix}-{i:03}"));
            async move { client.flows().create(&name).await.unwrap() }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let filter: types::ReadFlowsBody =
        serde_json::from_value(json!({ "flows": { "name": { "like_": prefix } } })).unwrap();
    let before = client.requests_sent();
    let names = collect_all(client.flows().stream(filter).map_ok(|f| f.name.to_string())).await;
    assert_eq!(names.len(), total);
    let unique_names: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique_names.len(), total, "no item twice");
    assert_eq!(client.requests_sent() - before, 2, "two pages of 200");
}

#[tokio::test]
async fn a_deployment_runs_and_its_run_is_waited_for() {
    let client = client().await;
    let flow_name = unique("deployed");
    let flow = client.flows().create(&flow_name).await.unwrap();
    let deployment = client.deployments().create(flow.id, "nightly").await.unwrap();
    let by_name = client
        .deployments()
        .get_by_name(&format!("{flow_name}/nightly"))
        .await
        .unwrap();
    assert_eq!(by_name.id, deployment.id);

    let run = client
        .deployments()
        .create_run(deployment.id)
        .parameters(&json!({ "date": "2026-11-24", "rows": 500 }))
        .tags(["rust", "test"])
        .idempotency_key("nightly-2026-11-24")
        .send()
        .await
        .unwrap();
    assert_eq!(run.state_type, Some(StateType::Scheduled));
    assert_eq!(run.parameters.get("rows"), Some(&json!(500)));
    assert!(run.tags.contains(&"rust".to_string()));
    let again = client
        .deployments()
        .create_run(deployment.id)
        .idempotency_key("nightly-2026-11-24")
        .send()
        .await
        .unwrap();
    assert_eq!(again.id, run.id, "the idempotency key returns the same run");

    // No worker: the run stays scheduled, and waiting for it times out with the state named.
    let err = client
        .flow_runs()
        .wait_for_completion(run.id, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WaitTimeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("SCHEDULED") && err.to_string().contains("worker"),
        "{err}"
    );

    // Drive it through the API, as a worker would, while someone waits for it.
    let waiter = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .flow_runs()
                .wait_for_completion(run.id, Duration::from_secs(60))
                .await
        }
    });
    let running = client
        .flow_runs()
        .set_state(run.id, StateType::Running)
        .force()
        .send()
        .await
        .unwrap();
    assert_eq!(running.status, SetStateStatus::Accept);
    let completed = client
        .flow_runs()
        .set_state(run.id, StateType::Completed)
        .message("done by the test")
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status, SetStateStatus::Accept);
    let finished = waiter.await.unwrap().unwrap();
    assert_eq!(finished.id, run.id);
    assert_eq!(finished.state_type, Some(StateType::Completed));

    // Filter by deployment, then cancel and delete a second run.
    let second = client
        .deployments()
        .create_run(deployment.id)
        .send()
        .await
        .unwrap();
    let runs = collect_all(client.flow_runs().stream(runs_of_deployment(deployment.id))).await;
    assert_eq!(runs.len(), 2);
    client.flow_runs().cancel(second.id).await.unwrap();
    assert_eq!(
        client.flow_runs().get(second.id).await.unwrap().state_type,
        Some(StateType::Cancelled)
    );
    // A pending run (submitted to infrastructure) is signalled: CANCELLING, for whoever executes
    // it to stop it, as Prefect's CLI does; it is not set CANCELLED behind the executor's back.
    let third = client.deployments().create_run(deployment.id).await.unwrap();
    let pending = client
        .flow_runs()
        .set_state(third.id, StateType::Pending)
        .await
        .unwrap();
    assert_eq!(pending.status, SetStateStatus::Accept);
    client.flow_runs().cancel(third.id).await.unwrap();
    assert_eq!(
        client.flow_runs().get(third.id).await.unwrap().state_type,
        Some(StateType::Cancelling)
    );
    client.flow_runs().delete(second.id).await.unwrap();
    assert!(is_not_found(client.flow_runs().get(second.id).await));
}

#[tokio::test]
async fn a_watched_run_is_seen_once_in_each_state_it_is_put_in_until_it_is_deleted() {
    let client = client().await;
    let flow = client.flows().create(&unique("watched")).await.unwrap();
    let deployment = client.deployments().create(flow.id, "watched").await.unwrap();
    let run = client.deployments().create_run(deployment.id).await.unwrap();
    let mut runs = client.flow_runs().watch(run.id);
    let first = runs.next().await.unwrap().unwrap();
    assert_eq!(
        first.state_type,
        Some(StateType::Scheduled),
        "the run as it is now"
    );

    // Each change is seen within moments (its event wakes the watch; the fallback read comes
    // only every 10 s), in order.
    for state in [StateType::Pending, StateType::Running, StateType::Completed] {
        client
            .flow_runs()
            .set_state(run.id, state.clone())
            .force()
            .await
            .unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(5), runs.next())
            .await
            .unwrap_or_else(|_| panic!("{state} was not seen within 5 s"))
            .unwrap()
            .unwrap();
        assert_eq!(seen.state_type, Some(state));
    }

    // No change, nothing new: the fallback read (every 10 s) does not repeat the run.
    assert!(
        tokio::time::timeout(Duration::from_secs(11), runs.next())
            .await
            .is_err(),
        "a run that did not change was yielded again"
    );

    // Deleted, the run cannot be read: the watch ends with the error.
    client.flow_runs().delete(run.id).await.unwrap();
    let last = tokio::time::timeout(Duration::from_secs(15), runs.next())
        .await
        .expect("the fallback read finds the run gone")
        .unwrap();
    assert!(last.is_err_and(|e| e.is_not_found()));
    assert!(runs.next().await.is_none(), "nothing after the error");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    batch: u32,
    targets: Vec<String>,
    dry_run: bool,
}

#[tokio::test]
async fn variables_round_trip_a_struct() {
    let client = client().await;
    let variables = client.variables();
    let name = unique("settings").replace('-', "_");
    assert_eq!(variables.value::<Settings>(&name).await.optional().unwrap(), None);
    assert!(variables.get_by_name(&name).await.unwrap_err().is_not_found());
    let settings = Settings {
        batch: 500,
        targets: vec!["eu".into(), "us".into()],
        dry_run: false,
    };
    variables.set(&name, &settings).await.unwrap();
    assert_eq!(variables.value::<Settings>(&name).await.unwrap(), settings);
    assert_eq!(variables.get_by_name(&name).await.unwrap().name.to_string(), name);
    variables
        .set(&name, &json!({ "batch": 1, "targets": [], "dry_run": true }))
        .await
        .unwrap();
    assert_eq!(variables.value::<Settings>(&name).await.unwrap().batch, 1);
    let err = variables.value::<Vec<u8>>(&name).await.unwrap_err();
    assert!(err.to_string().contains("serde_json::Value"), "{err}");
    variables.set(&format!("{name}_n"), &42).await.unwrap();
    assert_eq!(variables.value::<i64>(&format!("{name}_n")).await.unwrap(), 42);
    // Set to null, as Prefect's `Variable.set(name, None, overwrite=True)` does: the old value
    // goes (it used to stay, the null dropped from the request).
    variables.set(&format!("{name}_n"), &None::<i64>).await.unwrap();
    assert_eq!(
        variables
            .value::<Option<i64>>(&format!("{name}_n"))
            .await
            .unwrap(),
        None
    );
    let stored = variables.get_by_name(&format!("{name}_n")).await.unwrap();
    assert_eq!(
        serde_json::to_value(&stored.value).unwrap(),
        serde_json::Value::Null
    );
    variables
        .set(&format!("{name}_fresh"), &None::<i64>)
        .await
        .unwrap();
    assert_eq!(
        variables
            .value::<Option<i64>>(&format!("{name}_fresh"))
            .await
            .unwrap(),
        None
    );
    let listed: Vec<_> = variables.stream(Default::default()).try_collect().await.unwrap();
    assert!(listed.iter().any(|v| v.name.to_string() == name));
    variables.delete_by_name(&name).await.unwrap();
    assert!(variables.delete_by_name(&name).await.unwrap_err().is_not_found());
    assert_eq!(variables.delete_by_name(&name).await.optional().unwrap(), None);
    assert_eq!(variables.value::<Settings>(&name).await.optional().unwrap(), None);
}

#[tokio::test]
async fn logs_are_written_and_read_back_in_order() {
    let client = client().await;
    let flow = client.flows().create(&unique("logged")).await.unwrap();
    let deployment = client.deployments().create(flow.id, "logs").await.unwrap();
    let run = client
        .deployments()
        .create_run(deployment.id)
        .send()
        .await
        .unwrap();
    let start = chrono::Utc::now();
    let entries: Vec<_> = (0..3)
        .map(|i| {
            LogEntry::new(LogLevel::Info, "rust-test", &format!("line {i}"))
                .flow_run(run.id)
                .at(start + chrono::Duration::milliseconds(i))
        })
        .collect();
    client.logs().write(entries).await.unwrap();
    client
        .logs()
        .write([LogEntry::new(LogLevel::Warning, "rust-test", "no run")])
        .await
        .unwrap();
    let read: Vec<_> = client.flow_runs().logs(run.id).try_collect().await.unwrap();
    let messages: Vec<_> = read.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, ["line 0", "line 1", "line 2"]);
}

#[tokio::test]
async fn artifacts_of_each_kind_and_the_latest_by_key() {
    let client = client().await;
    let artifacts = client.artifacts();
    let key = unique("report");
    artifacts.create_markdown(&key, "# first").send().await.unwrap();
    artifacts.create_markdown(&key, "# second").send().await.unwrap();
    let latest = artifacts.get_latest(&key).await.unwrap();
    assert_eq!(latest.data, Some(json!("# second")));
    assert_eq!(latest.type_.as_deref(), Some("markdown"));

    let table_key = unique("table");
    let rows = json!([{ "region": "eu", "rows": 3 }, { "region": "us", "rows": 5 }]);
    artifacts.create_table(&table_key, &rows).send().await.unwrap();
    let table = artifacts.get_latest(&table_key).await.unwrap();
    assert_eq!(table.type_.as_deref(), Some("table"));
    let stored: serde_json::Value = serde_json::from_str(table.data.unwrap().as_str().unwrap()).unwrap();
    assert_eq!(stored, rows);

    let link_key = unique("link");
    artifacts
        .create_link(&link_key, "https://example.com/r")
        .text("report")
        .send()
        .await
        .unwrap();
    assert_eq!(
        artifacts.get_latest(&link_key).await.unwrap().data,
        Some(json!("[report](https://example.com/r)"))
    );
    assert!(is_client_side(
        artifacts.create_markdown("Not A Key", "x").send().await
    ));
}

#[tokio::test]
async fn work_pools_and_queues_pause_and_resume() {
    let client = client().await;
    let pools = client.work_pools();
    let pool = unique("pool");
    pools.create(&pool, "process").await.unwrap();
    assert!(!pools.get_by_name(&pool).await.unwrap().is_paused);
    pools.pause(&pool).await.unwrap();
    assert!(pools.get_by_name(&pool).await.unwrap().is_paused);
    pools.resume(&pool).await.unwrap();
    assert!(!pools.get_by_name(&pool).await.unwrap().is_paused);

    let queues = pools.queues(&pool);
    queues.create("urgent").await.unwrap();
    queues.pause("urgent").await.unwrap();
    assert!(queues.get_by_name("urgent").await.unwrap().is_paused);
    queues.resume("urgent").await.unwrap();
    assert!(!queues.get_by_name("urgent").await.unwrap().is_paused);
    for n in 0..4 {
        queues.create(&format!("extra-{n}")).await.unwrap();
    }
    let mut names = collect_all(queues.stream(Default::default()).map_ok(|q| q.name.to_string())).await;
    names.sort();
    assert_eq!(
        names,
        ["default", "extra-0", "extra-1", "extra-2", "extra-3", "urgent"]
    );
    queues.delete_by_name("extra-0").await.unwrap();
    assert!(queues.get_by_name("extra-0").await.unwrap_err().is_not_found());
    let page = queues.list_page(&Default::default()).await.unwrap();
    assert_eq!(page.len(), 5);
    let listed: Vec<_> = pools.stream(Default::default()).try_collect().await.unwrap();
    assert!(listed.iter().any(|p| p.name.to_string() == pool));
    assert!(is_not_found(pools.get_by_name(&unique("missing")).await));
}

#[tokio::test]
async fn events_emitted_are_read_back() {
    let client = client().await;
    let name = format!("rust.test.{}", uuid::Uuid::new_v4().simple());
    let id = client
        .events()
        .emit(&name, "rust.test.resource")
        .payload(&json!({ "rows": 500 }))
        .send()
        .await
        .unwrap();
    let filter: types::ReadEventsBody = serde_json::from_value(json!({
        "filter": { "event": { "name": [name] } },
        "limit": 10
    }))
    .unwrap();
    // The server stores events asynchronously: poll for it.
    let stored = || async {
        let page = client.events().list_page(&filter).await.unwrap();
        page.events.into_iter().find(|e| e.id == id)
    };
    let every = Duration::from_millis(250);
    let event = eventually(Duration::from_secs(20), every, "the event never appeared", stored).await;
    assert_eq!(event.payload.get("rows"), Some(&json!(500)));
    let empty_page = types::ReadEventsBody { limit: 0, ..filter };
    assert!(is_client_side(client.events().list_page(&empty_page).await));
}

#[tokio::test]
async fn server_health_and_version() {
    let client = client().await;
    client.health().await.unwrap();
    // The pinned release, or the one the compatibility matrix runs.
    let expected = std::env::var("PREFECT_CLIENT_TEST_PREFECT_RELEASE")
        .unwrap_or_else(|_| prefect_client::PREFECT_VERSION.to_string());
    assert_eq!(client.server_version().await.unwrap(), expected);
}

#[tokio::test]
async fn the_verb_table_holds_on_every_handle() {
    let client = client().await;
    // Both create forms, awaited directly (a builder is awaited as `.send()` would).
    let tag = unique("verbs");
    client.concurrency_limits().create(&tag, 2).await.unwrap();
    client.global_concurrency_limits().create(&tag, 2).await.unwrap();
    client
        .global_concurrency_limits()
        .update_by_name(&tag)
        .limit(3)
        .await
        .unwrap();
    assert_eq!(limit_of(&client, &tag).await, 3);

    let flow = client.flows().create(&unique("verbs-flow")).await.unwrap();
    assert_eq!(client.flows().get(flow.id).await.unwrap().id, flow.id);
    let deployment = client.deployments().create(flow.id, "verbs").await.unwrap();
    assert_eq!(
        client.deployments().get(deployment.id).await.unwrap().id,
        deployment.id
    );
    let run = client.deployments().create_run(deployment.id).await.unwrap();
    assert_eq!(client.flow_runs().get(run.id).await.unwrap().id, run.id);
    assert!(!client.flow_runs().states(run.id).await.unwrap().is_empty());

    let key = unique("verbs-artifact");
    let artifact = client
        .artifacts()
        .create_markdown(&key, "# hi")
        .flow_run(run.id)
        .await
        .unwrap();
    let id = artifact.id.unwrap();
    assert_eq!(
        client.artifacts().get(id).await.unwrap().key.as_deref(),
        Some(key.as_str())
    );
    client.artifacts().delete(id).await.unwrap();
    assert!(client.artifacts().get(id).await.unwrap_err().is_not_found());

    let name = unique("verbs_variable").replace('-', "_");
    client.variables().set(&name, &1).await.unwrap();
    let variable = client.variables().get_by_name(&name).await.unwrap();
    assert_eq!(
        client
            .variables()
            .get(variable.id)
            .await
            .unwrap()
            .name
            .to_string(),
        name
    );
    client.variables().delete(variable.id).await.unwrap();
    assert_eq!(
        client
            .variables()
            .get(variable.id)
            .await
            .optional()
            .unwrap()
            .map(|v| v.id),
        None
    );

    client.flow_runs().delete(run.id).await.unwrap();
    client.deployments().delete(deployment.id).await.unwrap();
    assert!(is_not_found(client.deployments().get(deployment.id).await));
    client.flows().delete(flow.id).await.unwrap();
    assert!(client.flows().get(flow.id).await.optional().unwrap().is_none());
    client.concurrency_limits().delete_by_tag(&tag).await.unwrap();
    client
        .global_concurrency_limits()
        .delete_by_name(&tag)
        .await
        .unwrap();
}
