//! The `configure` example against a real server: run once it creates every object, run again
//! it changes nothing, with another secret only the secret is updated; Prefect's own Python
//! client reads every object back as declared.

mod common;

use std::time::Duration;

use tokio::process::Command;

use common::serving::{example, own_server, python};

/// Runs the example against `api_url` (`secret` as `CONFIGURE_SECRET`, if given); its lines.
async fn configure(api_url: &str, secret: Option<&str>) -> Vec<String> {
    let mut command = Command::new(example("configure"));
    command
        .env("PREFECT_API_URL", api_url)
        .env_remove("CONFIGURE_SECRET");
    if let Some(secret) = secret {
        command.env("CONFIGURE_SECRET", secret);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the example ends within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "configure failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// The first word of each object's line, by what it is (the line's words after the change,
/// without the id).
fn changes(lines: &[String]) -> Vec<(String, String)> {
    lines[..lines.len() - 1]
        .iter()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            (words[0].to_string(), words[1..words.len() - 1].join(" "))
        })
        .collect()
}

/// What Prefect's Python client reads of the configuration.
const READ_BACK: &str = r#"
import asyncio, json
from prefect.blocks.system import Secret
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client

async def main():
    secret = (await Secret.aload("rust-configure-secret")).get()
    async with get_client() as client:
        settings = await client.read_block_document_by_name("main", "rust-configure-settings", include_secrets=True)
        pool = await client.read_work_pool("rust-configure-pool")
        deployment = await client.read_deployment_by_name("rust-configure-flow/nightly")
        automations = {a.name: a for a in await client.read_automations()}
    schedule = deployment.schedules[0].schedule
    failure = automations["rust-configure-on-failure"]
    print(json.dumps({
        "secret": secret,
        "settings": settings.data,
        "pool": [pool.type, pool.concurrency_limit],
        "cron": [schedule.cron, schedule.timezone],
        "pull_steps": deployment.pull_steps,
        "tags": sorted(deployment.tags),
        "pool_of_deployment": deployment.work_pool_name,
        "zombies": automations["rust-configure-zombies"].actions[0].type,
        "on_failure": [failure.actions[0].type, str(failure.actions[0].deployment_id), sorted(failure.trigger.expect)],
        "deployment_id": str(deployment.id),
    }))

asyncio.run(main())
"#;

#[tokio::test]
async fn configure_applies_every_object_once_changes_nothing_again_and_python_reads_it_back() {
    let server = own_server().start().await.unwrap();
    let api_url = server.api_url();

    let first = configure(api_url, None).await;
    assert_eq!(
        first.last().unwrap(),
        "applied 7 objects, 7 changed",
        "{first:#?}"
    );
    let kinds: Vec<String> = changes(&first)
        .into_iter()
        .map(|(change, what)| {
            assert_eq!(change, "created", "{what}");
            what
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "secret block rust-configure-secret",
            "block type rust-configure-settings",
            "block document rust-configure-settings/main",
            "work pool rust-configure-pool",
            "deployment rust-configure-flow/nightly",
            "automation rust-configure-zombies",
            "automation rust-configure-on-failure",
        ]
    );

    let again = configure(api_url, None).await;
    assert_eq!(
        again.last().unwrap(),
        "applied 7 objects, 0 changed",
        "{again:#?}"
    );
    assert!(
        changes(&again).iter().all(|(change, _)| change == "unchanged"),
        "{again:#?}"
    );
    // The same objects: the ids did not change.
    assert_eq!(
        &first[..7],
        &again[..7]
            .iter()
            .map(|l| l.replacen("unchanged", "created", 1))
            .collect::<Vec<_>>()[..]
    );

    let other = configure(api_url, Some("another")).await;
    assert_eq!(
        other.last().unwrap(),
        "applied 7 objects, 1 changed",
        "{other:#?}"
    );
    let updated: Vec<_> = changes(&other)
        .into_iter()
        .filter(|(change, _)| change != "unchanged")
        .collect();
    assert_eq!(
        updated,
        [(
            "updated".to_string(),
            "secret block rust-configure-secret".to_string()
        )]
    );
    assert!(
        !other.join("\n").contains("another"),
        "the secret is never printed"
    );

    let read: serde_json::Value = serde_json::from_str(python(api_url, READ_BACK, &[]).await.trim()).unwrap();
    assert_eq!(read["secret"], "another");
    assert_eq!(
        read["settings"],
        serde_json::json!({ "batch": 500, "region": "eu" })
    );
    assert_eq!(read["pool"], serde_json::json!(["process", 3]));
    assert_eq!(read["cron"], serde_json::json!(["0 3 * * *", "Europe/Paris"]));
    assert_eq!(
        read["pull_steps"],
        serde_json::json!([
            { "prefect.deployments.steps.set_working_directory": { "directory": "/tmp" } },
            { "prefect.deployments.steps.run_shell_script": { "script": "echo ready" } },
        ])
    );
    assert_eq!(read["tags"], serde_json::json!(["configured", "rust"]));
    assert_eq!(read["pool_of_deployment"], "rust-configure-pool");
    assert_eq!(read["zombies"], "change-flow-run-state");
    assert_eq!(
        read["on_failure"],
        serde_json::json!([
            "pause-deployment",
            read["deployment_id"],
            ["prefect.flow-run.Failed"]
        ])
    );
}
