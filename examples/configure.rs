//! Prefect's configuration as code: applies a secret, a block type of this program's own Rust
//! type and its document, a process work pool, a deployment on it, and two automations, then
//! says what each apply did.
//!
//! ```sh
//! cargo run --example configure
//! CONFIGURE_SECRET=another cargo run --example configure   # only the secret is updated
//! ```
//!
//! With `PREFECT_API_URL` set it configures that server; unset, it starts a local one. Each
//! object prints one line (`created`, `updated` or `unchanged`, what it is, its id), then
//! `applied N objects, M changed`. Run twice, everything is `unchanged` the second time.

use prefect_client::resources::automations::{Action, AutomationSpec, EventTrigger, Target};
use prefect_client::resources::blocks::{Block, Secret, schema_checksum, schema_fields};
use prefect_client::resources::deployments::{DeploymentSpec, PullStep, RunShellScript, Schedule};
use prefect_client::resources::work_pools::WorkPoolSpec;
use prefect_client::resources::{Applied, Change};
use prefect_client::{Client, OptionalExt};
use uuid::Uuid;

/// The settings of the nightly load, kept in Prefect as a block.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct ConfigureSettings {
    /// Rows loaded per batch.
    batch: u32,
    /// Where the data lives.
    region: String,
}

impl Block for ConfigureSettings {
    const TYPE_SLUG: &'static str = "rust-configure-settings";
    const TYPE_NAME: &'static str = "Rust Configure Settings";
}

/// What was applied so far: one line each, as it is applied.
#[derive(Default)]
struct Report {
    objects: usize,
    changed: usize,
}

impl Report {
    fn line(&mut self, change: Change, what: &str, id: Uuid) {
        self.objects += 1;
        if change.changed() {
            self.changed += 1;
        }
        println!("{change} {what} {id}");
    }

    fn applied<T>(&mut self, applied: Applied<T>, what: &str, id: impl Fn(&T) -> Uuid) -> T {
        self.line(applied.change, what, id(&applied.object));
        applied.object
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    let mut report = Report::default();

    let secret = std::env::var("CONFIGURE_SECRET").unwrap_or_else(|_| "s3cr3t".into());
    let saved = client
        .blocks()
        .save("rust-configure-secret", &Secret::new(secret))
        .await?;
    report.applied(saved, "secret block rust-configure-secret", |d| d.id);

    let (change, type_id) = register_settings(&client).await?;
    report.line(change, "block type rust-configure-settings", type_id);
    let settings = ConfigureSettings {
        batch: 500,
        region: "eu".into(),
    };
    let saved = client.blocks().save("main", &settings).await?;
    report.applied(saved, "block document rust-configure-settings/main", |d| d.id);

    let pool = WorkPoolSpec::new("rust-configure-pool", "process").concurrency_limit(3);
    let pool = client.work_pools().apply(&pool).await?;
    report.applied(pool, "work pool rust-configure-pool", |p| p.id);

    let deployment = DeploymentSpec::new("rust-configure-flow", "nightly")
        .work_pool("rust-configure-pool")
        .schedule(Schedule::cron("0 3 * * *").timezone("Europe/Paris"))
        .pull_step(PullStep::set_working_directory("/tmp"))
        .pull_step(RunShellScript::new("echo ready"))
        .tags(["rust", "configured"]);
    let deployment = client.deployments().apply(&deployment).await?;
    let deployment = report.applied(deployment, "deployment rust-configure-flow/nightly", |d| d.id);

    let zombies = AutomationSpec::crash_zombie_flow_runs("rust-configure-zombies");
    let zombies = client.automations().apply(&zombies).await?;
    report.applied(zombies, "automation rust-configure-zombies", |a| a.id);

    let on_failure = AutomationSpec::new(
        "rust-configure-on-failure",
        EventTrigger::reactive()
            .expect(["prefect.flow-run.Failed"])
            .matching("prefect.resource.id", ["prefect.flow-run.*"])
            .matching_related(
                "prefect.resource.id",
                [format!("prefect.deployment.{}", deployment.id)],
            ),
    )
    .action(Action::PauseDeployment(Target::Selected(deployment.id)));
    let on_failure = client.automations().apply(&on_failure).await?;
    report.applied(on_failure, "automation rust-configure-on-failure", |a| a.id);

    println!("applied {} objects, {} changed", report.objects, report.changed);
    Ok(())
}

/// Registers [`ConfigureSettings`] as a block type; whether its type and schema were there
/// already, and the type's id.
async fn register_settings(client: &Client) -> Result<(Change, Uuid), Box<dyn std::error::Error>> {
    let blocks = client.blocks();
    let had_type = blocks
        .types()
        .get_by_slug(ConfigureSettings::TYPE_SLUG)
        .await
        .optional()?
        .is_some();
    let checksum = schema_checksum(&schema_fields::<ConfigureSettings>()?);
    let had_schema = blocks
        .schemas()
        .get_by_checksum(&checksum)
        .await
        .optional()?
        .is_some();
    let registered = blocks.register::<ConfigureSettings>().await?;
    let change = match (had_type, had_schema) {
        (true, true) => Change::Unchanged,
        (true, false) => Change::Updated,
        (false, _) => Change::Created,
    };
    Ok((change, registered.block_type.id))
}
