//! A real server restarted mid-run (same port, same PREFECT_HOME): requests made while it is
//! down are retried until it is back, nothing is created twice, and a slot guard held across
//! the restart is released afterwards (with file-backed lease storage, which survives restarts).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prefect_client::types;
use prefect_client::{Client, Error};
use prefect_testkit::{LocalServer, LocalServerBuilder, free_port};
use serde_json::json;
use uuid::Uuid;

const ITEMS: usize = 20;

fn server_builder(port: u16) -> LocalServerBuilder {
    LocalServer::builder()
        .port(port)
        .env(
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
            "prefect.server.concurrency.lease_storage.filesystem",
        )
        .env("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "1")
}

/// Creates the flow run of work item `item` once: a create whose answer was lost is repeated
/// with the same idempotency key, which the server answers with the run it already has.
async fn create_run_once(client: &Client, flow_id: Uuid, item: usize) -> Result<Uuid, Error> {
    let body: types::FlowRunCreate = serde_json::from_value(json!({
        "flow_id": flow_id,
        "idempotency_key": format!("item-{item}"),
    }))
    .unwrap();
    loop {
        match client.raw().create_flow_run(&body).await {
            Ok(run) => return Ok(run.into_inner().id),
            Err(e) => match Error::from_generated(e).await {
                Error::ConnectionLost { .. } => continue,
                other => return Err(other),
            },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_rides_out_a_server_restart() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let mut server = server_builder(port).start_with_home(home.path()).await.unwrap();
    // Ten retries back off for about 50 s in all: longer than the server takes to restart.
    let client = Client::builder(server.api_url()).max_retries(10).build().unwrap();

    let flow: types::FlowCreate = serde_json::from_value(json!({ "name": "restart" })).unwrap();
    let flow_id = client.raw().create_flow(&flow).await.unwrap().into_inner().id;
    client
        .global_concurrency_limits()
        .create("restart", 1)
        .send()
        .await
        .unwrap();
    let guard = client
        .concurrency(["restart"])
        .lease_duration(Duration::from_secs(60))
        .acquire()
        .await
        .unwrap();

    let done = Arc::new(AtomicUsize::new(0));
    let worker = tokio::spawn({
        let (client, done) = (client.clone(), done.clone());
        async move {
            let mut ids = Vec::new();
            for item in 0..ITEMS {
                let id = create_run_once(&client, flow_id, item).await?;
                let read = client.raw().read_flow_run(&id).await.map_err(|e| format!("{e}"));
                assert_eq!(read.unwrap().into_inner().id, id);
                ids.push(id);
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, Error>(ids)
        }
    });
    while done.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| server.stop());
    let done_while_down = done.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let server = server_builder(port).start_with_home(home.path()).await.unwrap();

    let ids = worker.await.unwrap().expect("every work item completed");
    assert!(done_while_down < ITEMS, "the restart happened mid-run");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ITEMS);
    let count: types::CountFlowRunsBody =
        serde_json::from_value(json!({ "flows": { "id": { "any_": [flow_id] } } })).unwrap();
    let on_server = client.raw().count_flow_runs(&count).await.unwrap().into_inner();
    assert_eq!(on_server, ITEMS as i64, "nothing created twice");

    guard.check().expect("the lease survived the restart");
    guard.release().await.expect("released after the restart");
    let limit = client
        .global_concurrency_limits()
        .get_by_name("restart")
        .await
        .unwrap();
    assert_eq!(limit.active_slots, 0, "no slot left held");
    drop(server);
}
