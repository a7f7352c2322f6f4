//! Deployments as code against a real server: pull steps, labels, version info and triggers
//! read back by Prefect's Python client; `apply` reporting created, unchanged (with nothing
//! written) and updated; partial updates; deployments made by Python read into a spec that
//! applies back unchanged.

mod common;

use prefect_client::resources::Change;
use prefect_client::resources::automations::EventTrigger;
use prefect_client::resources::deployments::{
    DeploymentSpec, DeploymentTrigger, PullStep, RunShellScript, Schedule, VersionInfo,
};
use serde_json::{Value, json};

use common::serving::python;
use common::{client, unique};

/// The deployment `flow/name` as Prefect's Python client reads it, with the automations it
/// owns, as JSON.
async fn read_by_python(api_url: &str, full_name: &str) -> Value {
    let script = "import asyncio, json, sys\n\
        from prefect.client.orchestration import get_client\n\
        async def main():\n    \
            async with get_client() as client:\n        \
                d = await client.read_deployment_by_name(sys.argv[1])\n        \
                owner = f'prefect.deployment.{d.id}'\n        \
                owned = await client.read_resource_related_automations(owner)\n        \
                print(json.dumps({\n            \
                    'deployment': d.model_dump(mode='json'),\n            \
                    'automations': [a.model_dump(mode='json') for a in owned],\n        \
                }))\n\
        asyncio.run(main())\n";
    let out = python(api_url, script, &[full_name]).await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn nightly(name: &str) -> DeploymentSpec {
    DeploymentSpec::new("specs-flow", name)
        .schedule(Schedule::cron("0 3 * * *").timezone("Europe/Paris"))
        .pull_step(PullStep::set_working_directory("/opt/etl"))
        .pull_step(RunShellScript::new("echo ready").env("STAGE", "prod"))
        .tags(["etl", "nightly"])
        .label("team", "data")
        .version_info(VersionInfo::new("vcs:git", "3f2a9c1").branch("main"))
        .trigger(
            DeploymentTrigger::new(EventTrigger::reactive().expect(["acme.file.uploaded"]))
                .parameters(&json!({ "file": "{{ event.resource.id }}" })),
        )
}

#[tokio::test]
async fn a_deployment_from_code_is_what_prefects_python_client_reads_back() {
    let client = client().await;
    let name = unique("nightly");
    let applied = client.deployments().apply(&nightly(&name)).await.unwrap();
    assert_eq!(applied.change, Change::Created);

    let read = read_by_python(client.api_url(), &format!("specs-flow/{name}")).await;
    let deployment = &read["deployment"];
    assert_eq!(
        deployment["pull_steps"],
        json!([
            { "prefect.deployments.steps.set_working_directory": { "directory": "/opt/etl" } },
            { "prefect.deployments.steps.run_shell_script": { "script": "echo ready", "env": { "STAGE": "prod" } } },
        ])
    );
    let schedule = &deployment["schedules"][0]["schedule"];
    assert_eq!(
        (&schedule["cron"], &schedule["timezone"]),
        (&json!("0 3 * * *"), &json!("Europe/Paris"))
    );
    let mut tags: Vec<&str> = deployment["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["etl", "nightly"]);
    assert_eq!(deployment["labels"]["team"], "data");
    let automations = read["automations"].as_array().unwrap();
    assert_eq!(automations.len(), 1, "{automations:?}");
    let automation = &automations[0];
    assert_eq!(automation["name"], format!("{name}__automation_1"));
    assert_eq!(automation["trigger"]["expect"], json!(["acme.file.uploaded"]));
    assert_eq!(automation["actions"][0]["type"], "run-deployment");
    assert_eq!(
        automation["actions"][0]["deployment_id"],
        applied.object.id.to_string()
    );
    assert_eq!(
        automation["actions"][0]["parameters"]["file"],
        "{{ event.resource.id }}"
    );
}

#[tokio::test]
async fn applying_the_same_spec_again_writes_nothing_and_a_change_updates() {
    let client = client().await;
    let name = unique("twice");
    let deployments = client.deployments();
    let first = deployments.apply(&nightly(&name)).await.unwrap();
    let automation = |read: Value| read["automations"][0]["id"].clone();
    let full_name = format!("specs-flow/{name}");
    let trigger_before = automation(read_by_python(client.api_url(), &full_name).await);

    let again = deployments.apply(&nightly(&name)).await.unwrap();
    assert_eq!(again.change, Change::Unchanged);
    let now = deployments.get(first.object.id).await.unwrap();
    assert_eq!(
        now.updated, first.object.updated,
        "no write reached the deployment"
    );
    let trigger_after = automation(read_by_python(client.api_url(), &full_name).await);
    assert_eq!(
        trigger_after, trigger_before,
        "the trigger's automation was kept, not made again"
    );

    let changed = deployments
        .apply(&nightly(&name).tags(["etl"]).description("now described"))
        .await
        .unwrap();
    assert_eq!(changed.change, Change::Updated);
    assert_eq!(changed.object.id, first.object.id);
    assert_eq!(changed.object.tags, ["etl"]);
    assert_eq!(changed.object.description.as_deref(), Some("now described"));
    assert_ne!(changed.object.updated, first.object.updated);

    let retriggered = deployments
        .apply(
            &nightly(&name)
                .tags(["etl"])
                .description("now described")
                .trigger(EventTrigger::reactive().expect(["acme.other"])),
        )
        .await
        .unwrap();
    assert_eq!(retriggered.change, Change::Updated, "a new trigger is a change");
    let read = read_by_python(client.api_url(), &full_name).await;
    assert_eq!(read["automations"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_update_changes_only_the_fields_it_sets() {
    let client = client().await;
    let name = unique("partial");
    let deployments = client.deployments();
    let before = deployments
        .apply(&nightly(&name).paused(true))
        .await
        .unwrap()
        .object;
    deployments
        .update(before.id)
        .description("only this")
        .await
        .unwrap();
    let after = deployments.get(before.id).await.unwrap();
    assert_eq!(after.description.as_deref(), Some("only this"));
    assert_eq!(after.tags, before.tags);
    assert_eq!(after.pull_steps, before.pull_steps);
    assert_eq!(
        after.labels.get("team").map(|v| serde_json::to_value(v).unwrap()),
        Some(json!("data"))
    );
    assert!(after.paused, "paused stays as it was");
    let schedules = |d: &prefect_client::types::DeploymentResponse| {
        serde_json::to_value(&d.schedules[0].schedule).unwrap()
    };
    assert_eq!(schedules(&after), schedules(&before));
    assert_eq!(after.schedules[0].id, before.schedules[0].id);

    deployments
        .update(before.id)
        .tags(["b", "a"])
        .paused(false)
        .pull_steps([PullStep::set_working_directory("/srv")])
        .schedules([Schedule::cron("15 4 * * *").timezone("Europe/Paris")])
        .await
        .unwrap();
    let last = deployments.get(before.id).await.unwrap();
    assert_eq!(last.tags, ["b", "a"]);
    assert!(!last.paused);
    assert_eq!(
        serde_json::to_value(&last.pull_steps).unwrap(),
        json!([{ "prefect.deployments.steps.set_working_directory": { "directory": "/srv" } }])
    );
    assert_eq!(last.schedules.len(), 1);
    assert_eq!(
        serde_json::to_value(&last.schedules[0].schedule).unwrap()["cron"],
        "15 4 * * *"
    );
    assert_eq!(last.description.as_deref(), Some("only this"));
}

#[tokio::test]
async fn a_deployment_made_by_python_reads_into_a_spec_that_applies_back_unchanged() {
    let client = client().await;
    let name = unique("from-python");
    let script = "import asyncio, sys\n\
        from prefect.client.orchestration import get_client\n\
        from prefect.client.schemas.actions import DeploymentScheduleCreate\n\
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule\n\
        from datetime import timedelta\n\
        async def main():\n    \
            async with get_client() as client:\n        \
                flow_id = await client.create_flow_from_name('python-made')\n        \
                await client.create_deployment(\n            \
                    flow_id=flow_id, name=sys.argv[1], version='4', description='from python',\n            \
                    tags=['z', 'a'], parameters={'rows': 3}, entrypoint='flows.py:etl', path='/srv/etl',\n            \
                    pull_steps=[{'prefect.deployments.steps.git_clone': {'repository': 'https://github.com/acme/etl.git', 'branch': 'main'}},\n                        \
                                {'acme.steps.fetch': {'url': 's3://bucket/x', 'retries': 3}}],\n            \
                    schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron='0 3 * * *', timezone='Europe/Paris')),\n                       \
                               DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(hours=1)), active=False)],\n            \
                    concurrency_limit=2, job_variables={'env': {'A': '1'}})\n\
        asyncio.run(main())\n";
    python(client.api_url(), script, &[&name]).await;
    let deployments = client.deployments();
    let made = deployments
        .get_by_name(&format!("python-made/{name}"))
        .await
        .unwrap();

    let spec = DeploymentSpec::from_deployment(&made, "python-made");
    let applied = deployments.apply(&spec).await.unwrap();
    assert_eq!(applied.change, Change::Unchanged, "{spec:?}");
    let now = deployments.get(made.id).await.unwrap();
    assert_eq!(now.updated, made.updated, "nothing was written");

    assert_eq!(spec.name(), name);
    assert_eq!(spec.flow_name(), "python-made");
}

#[tokio::test]
async fn an_unknown_pull_step_is_sent_back_as_it_came() {
    let client = client().await;
    let name = unique("unknown-step");
    let unknown = json!({ "acme.steps.fetch": { "url": "s3://bucket/x", "retries": 3, "id": "fetch" } });
    let spec = DeploymentSpec::new("specs-flow", &name)
        .pull_step(PullStep::from_json(&unknown))
        .pull_step(PullStep::set_working_directory("{{ fetch.directory }}"));
    assert!(matches!(PullStep::from_json(&unknown), PullStep::Other(_)));
    let applied = client.deployments().apply(&spec).await.unwrap();

    let read = read_by_python(client.api_url(), &format!("specs-flow/{name}")).await;
    assert_eq!(read["deployment"]["pull_steps"][0], unknown);
    let back = DeploymentSpec::from_deployment(&applied.object, "specs-flow");
    let again = client.deployments().apply(&back).await.unwrap();
    assert_eq!(again.change, Change::Unchanged);
    assert_eq!(
        serde_json::to_value(&again.object.pull_steps).unwrap()[0],
        unknown
    );
}
