//! Streams over a real server that caps pages at 50 (`PREFECT_SERVER_API_DEFAULT_LIMIT`), while
//! the list changes under them.

mod common;

use std::collections::HashSet;

use common::{client_of_own_server, collect_all, unique};
use futures_util::{StreamExt, TryStreamExt};
use prefect_client::Client;
use prefect_client::query::FlowRunQuery;
use prefect_client::types::{self, StateType};
use prefect_testkit::LocalServer;
use tokio::sync::OnceCell;
use uuid::Uuid;

static SERVER: OnceCell<LocalServer> = OnceCell::const_new();

/// A server whose list operations refuse pages of more than 50.
async fn client() -> Client {
    client_of_own_server(&SERVER, "PREFECT_SERVER_API_DEFAULT_LIMIT", "50").await
}

/// Creates `n` flow runs of a new flow; returns the flow's name and the runs' ids.
async fn runs_of_a_new_flow(client: &Client, n: usize) -> (String, Vec<Uuid>) {
    let name = unique("streamed");
    let flow = client.flows().create(&name).await.unwrap();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(create_run(client, flow.id).await);
    }
    (name, ids)
}

async fn create_run(client: &Client, flow_id: Uuid) -> Uuid {
    let body = types::FlowRunCreate {
        context: Default::default(),
        deployment_id: None,
        empirical_policy: None,
        flow_id,
        flow_version: None,
        idempotency_key: None,
        infrastructure_document_id: None,
        job_variables: None,
        labels: None,
        name: None,
        parameters: Default::default(),
        parent_task_run_id: None,
        state: Some(types::StateCreate {
            data: None,
            message: None,
            name: None,
            state_details: None,
            type_: StateType::Pending,
        }),
        tags: Vec::new(),
        work_pool_name: None,
        work_queue_name: None,
    };
    match client.raw().create_flow_run(&body).await {
        Ok(run) => run.into_inner().id,
        Err(e) => panic!("{}", prefect_client::Error::from_generated(e).await),
    }
}

#[tokio::test]
async fn streams_follow_a_server_that_caps_pages_below_200() {
    let client = client().await;
    let (flow, ids) = runs_of_a_new_flow(&client, 120).await;
    let streamed: Vec<Uuid> = client
        .flow_runs()
        .stream(common::runs_of_flow(&flow))
        .map_ok(|run| run.id)
        .try_collect()
        .await
        .expect("every page fits the server's cap");
    assert_eq!(
        streamed.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    // Every other handle's stream too, after the client learned the cap.
    let flows: Vec<_> = collect_all(client.flows().stream(Default::default())).await;
    assert!(flows.iter().any(|f| f.name.to_string() == flow));
    // One page larger than the server's cap is the server's to refuse, with its message.
    let err = client
        .flow_runs()
        .list_page(&FlowRunQuery {
            limit: Some(100),
            ..common::runs_of_flow(&flow)
        })
        .await
        .unwrap_err();
    assert!(err.is_validation() && err.to_string().contains("50"), "{err}");
    let page = client
        .flow_runs()
        .list_page(&FlowRunQuery {
            limit: Some(50),
            ..common::runs_of_flow(&flow)
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 50);
}

#[tokio::test]
async fn a_stream_yields_every_run_once_while_runs_are_created_and_deleted() {
    let client = client().await;
    let (flow, ids) = runs_of_a_new_flow(&client, 251).await;
    let flow_id = client.flows().get_by_name(&flow).await.unwrap().id;
    let mut stream = Box::pin(client.flow_runs().stream(common::runs_of_flow(&flow)));
    let mut seen: Vec<Uuid> = Vec::new();
    // The first page is read: now one run goes (one already yielded) and 20 come.
    seen.push(stream.next().await.unwrap().unwrap().id);
    client.flow_runs().delete(seen[0]).await.unwrap();
    let mut created = HashSet::new();
    for _ in 0..20 {
        created.insert(create_run(&client, flow_id).await);
    }
    while let Some(run) = stream.next().await {
        seen.push(run.unwrap().id);
    }
    let unique_seen: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique_seen.len(), seen.len(), "a run came twice");
    let missing: Vec<&Uuid> = ids.iter().filter(|id| !unique_seen.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} existing runs were skipped: {missing:?}",
        missing.len()
    );
    assert!(
        unique_seen
            .iter()
            .all(|id| ids.contains(id) || created.contains(id)),
        "only runs of this flow"
    );
}
