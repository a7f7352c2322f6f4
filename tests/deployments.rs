//! Deployments from Rust code, against a real server: upserts of schedules, schemas and
//! limits, and job variables checked against the deployment's pool before a run is made.

mod common;

use std::time::Duration;

use prefect_client::Error;
use prefect_client::resources::deployments::{CollisionStrategy, DeploymentSpec, Schedule};
use serde_json::json;

use common::serving::*;
use common::{client, unique};

#[tokio::test]
async fn a_misspelt_per_run_job_variable_is_refused_before_the_run_is_created() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let pool = "process-pool";
    create_process_pool(server.api_url(), pool).await;
    let deployment = client
        .deployments()
        .apply(&DeploymentSpec::new("rust-serve-example", "per-run-variables").work_pool(pool))
        .await
        .unwrap()
        .object;
    let runs = || async {
        client
            .flow_runs()
            .list_page(&Default::default())
            .await
            .unwrap()
            .len()
    };
    let err = client
        .deployments()
        .create_run(deployment.id)
        .job_variables(&json!({ "comand": "echo hi" }))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::InvalidInput { .. })
            && text.contains("\"comand\"")
            && text.contains("command")
            && text.contains(pool),
        "{text}"
    );
    assert_eq!(runs().await, 0, "nothing was created");
    // The pool's own variable is taken.
    let run = client
        .deployments()
        .create_run(deployment.id)
        .job_variables(&json!({ "command": "echo hi" }))
        .await
        .unwrap();
    assert_eq!(
        run.job_variables.as_ref().map(|v| &v["command"]),
        Some(&json!("echo hi"))
    );
    // A deployment without a work pool has no variables to check against.
    let served = client
        .deployments()
        .apply(&DeploymentSpec::new("rust-serve-example", "no-pool"))
        .await
        .unwrap()
        .object;
    client
        .deployments()
        .create_run(served.id)
        .job_variables(&json!({ "anything": 1 }))
        .await
        .unwrap();
    assert_eq!(runs().await, 2);
}

#[tokio::test]
async fn deployments_from_code_upsert_their_schedules_schema_and_limit() {
    let client = client().await;
    let name = unique("rust-deployed");
    let flow = returning_rows(&name);
    let spec = flow
        .deployment("coded")
        .schedule(Schedule::cron("0 9 * * 1-5").timezone("Europe/Berlin"))
        .schedule(Schedule::interval(Duration::from_secs(3600)).active(false))
        .schedule(Schedule::rrule("FREQ=DAILY;BYHOUR=10").timezone("America/New_York"))
        .parameters(&json!({ "rows": 5 }))
        .tags(["rust", "coded"])
        .description("made from code")
        .version("7")
        .concurrency_limit(2, CollisionStrategy::CancelNew);
    let deployments = client.deployments();
    let first = deployments.apply(&spec).await.unwrap().object;
    assert_eq!(
        first.parameter_openapi_schema.as_ref().unwrap()["properties"]["rows"]["type"],
        "integer"
    );
    assert!(first.enforce_parameter_schema);
    assert_eq!(first.global_concurrency_limit.as_ref().unwrap().limit, 2);
    assert_eq!(deployments.schedules(first.id).list().await.unwrap().len(), 3);
    // Applied again with one schedule and no limit: the same deployment, now so.
    let again = deployments
        .apply(&flow.deployment("coded").schedule(Schedule::cron("30 8 * * *")))
        .await
        .unwrap()
        .object;
    assert_eq!(again.id, first.id, "an upsert by flow and name");
    let schedules = deployments.schedules(again.id).list().await.unwrap();
    assert_eq!(schedules.len(), 1);
    assert!(again.global_concurrency_limit.is_none(), "the limit went");
    // One schedule added, switched off, removed.
    let added = deployments
        .schedules(again.id)
        .add(&Schedule::interval(Duration::from_secs(600)))
        .await
        .unwrap();
    deployments
        .schedules(again.id)
        .set_active(added.id, false)
        .await
        .unwrap();
    let listed = deployments.schedules(again.id).list().await.unwrap();
    assert!(listed.iter().any(|s| s.id == added.id && !s.active));
    deployments.schedules(again.id).delete(added.id).await.unwrap();
    assert_eq!(deployments.schedules(again.id).list().await.unwrap().len(), 1);
    deployments.pause(again.id).await.unwrap();
    assert!(deployments.get(again.id).await.unwrap().paused);
    deployments.resume(again.id).await.unwrap();
    assert!(!deployments.get(again.id).await.unwrap().paused);
    // A bad time zone is the server's to refuse, typed.
    let err = deployments
        .apply(
            &flow
                .deployment("bad-zone")
                .schedule(Schedule::cron("0 9 * * *").timezone("Mars/Base")),
        )
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err}");
}
