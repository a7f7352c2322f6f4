//! Work pools complete, against a real server: a pool applied from Rust (Prefect's default
//! template, a concurrency limit) read back by Prefect's Python client, applies that change
//! nothing, updates, queues with priority and limits, the pool's workers, concurrency status.

mod common;

use std::time::Duration;

use futures_util::TryStreamExt;
use prefect_client::resources::Change;
use prefect_client::resources::work_pools::WorkPoolSpec;
use prefect_client::serve::{RustFlow, WORKER_TYPE};
use serde_json::Value;

use common::serving::{python, trivial};
use common::{client, unique};

/// What Prefect's Python client reads of the pool `argv[1]`: its type, limit, description, and
/// whether its template is the one Prefect's CLI gives a new pool of its type.
const READ_POOL: &str = r#"
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

async def main():
    async with get_client() as client:
        pool = await client.read_work_pool(sys.argv[1])
    default = await get_default_base_job_template_for_infrastructure_type(pool.type)
    print(json.dumps({
        "type": pool.type,
        "concurrency_limit": pool.concurrency_limit,
        "description": pool.description,
        "is_paused": pool.is_paused,
        "default_template": pool.base_job_template == default,
    }))

asyncio.run(main())
"#;

async fn read_by_python(api_url: &str, pool: &str) -> Value {
    let out = python(api_url, READ_POOL, &[pool]).await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn a_pool_applied_from_rust_is_what_prefects_cli_would_make_and_python_reads_it_back() {
    let client = client().await;
    let pools = client.work_pools();
    let name = unique("rust-applied-pool");
    let spec = WorkPoolSpec::new(&name, "process")
        .concurrency_limit(3)
        .description("nightly loads");
    let applied = pools.apply(&spec).await.unwrap();
    assert_eq!(applied.change, Change::Created);
    let read = read_by_python(client.api_url(), &name).await;
    assert_eq!(read["type"], "process");
    assert_eq!(read["concurrency_limit"], 3);
    assert_eq!(read["description"], "nightly loads");
    assert_eq!(
        read["default_template"], true,
        "the template is Prefect's process default: {read}"
    );

    // Applied again: nothing to change.
    let again = pools.apply(&spec).await.unwrap();
    assert_eq!(again.change, Change::Unchanged);
    assert_eq!(again.object.id, applied.object.id);

    // A new limit and a pause: changed to match.
    let changed = pools
        .apply(&spec.clone().concurrency_limit(5).paused(true))
        .await
        .unwrap();
    assert_eq!(changed.change, Change::Updated);
    assert_eq!(changed.object.concurrency_limit, Some(5));
    let read = read_by_python(client.api_url(), &name).await;
    assert_eq!(read["concurrency_limit"], 5);
    assert_eq!(read["is_paused"], true);

    // A pool's type cannot change: refused, naming what to do, the pool left as it is.
    let err = pools
        .apply(&WorkPoolSpec::new(&name, "docker"))
        .await
        .unwrap_err();
    assert!(err.is_client_side(), "{err}");
    assert!(err.to_string().contains("type cannot change"), "{err}");
    assert_eq!(pools.get_by_name(&name).await.unwrap().type_, "process");
}

#[tokio::test]
async fn create_gives_a_pool_its_worker_type_s_default_template_and_update_changes_only_what_is_set() {
    let client = client().await;
    let pools = client.work_pools();
    let name = unique("rust-created-pool");
    let created = pools.create(&name, "process").await.unwrap();
    let default = pools.default_base_job_template("process").await.unwrap().unwrap();
    assert_eq!(created.base_job_template, default);
    assert!(
        default["variables"]["properties"].get("command").is_some(),
        "the process template offers a command: {default:?}"
    );
    // The Rust worker's pool offers the labels it records on each run.
    let rust = pools
        .default_base_job_template(WORKER_TYPE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rust["job_configuration"]["labels"], "{{ labels }}");
    assert_eq!(
        pools.default_base_job_template("no-such-worker").await.unwrap(),
        None
    );

    pools.update(&name).description("changed").await.unwrap();
    pools.update(&name).concurrency_limit(2).await.unwrap();
    let pool = pools.get_by_name(&name).await.unwrap();
    assert_eq!(pool.description.as_deref(), Some("changed"));
    assert_eq!(pool.concurrency_limit, Some(2));
    assert_eq!(
        pool.base_job_template, default,
        "what was not set is left as it was"
    );
    let status = pools.concurrency_status(&name).await.unwrap();
    assert_eq!(status.concurrency_limit, Some(2));
    assert_eq!(status.active_slots, 0);
}

#[tokio::test]
async fn queues_take_priority_limit_and_description_and_an_update_keeps_a_pause() {
    let client = client().await;
    let pool = unique("rust-queue-pool");
    client.work_pools().create(&pool, "process").await.unwrap();
    let queues = client.work_pools().queues(&pool);
    let urgent = queues
        .create("urgent")
        .priority(1)
        .concurrency_limit(4)
        .description("first")
        .await
        .unwrap();
    assert_eq!(urgent.priority.get(), 1);
    assert_eq!(urgent.concurrency_limit, Some(4));
    assert_eq!(urgent.description.as_deref(), Some("first"));

    queues.pause("urgent").await.unwrap();
    queues.update("urgent").description("still first").await.unwrap();
    let read = queues.get_by_name("urgent").await.unwrap();
    assert!(read.is_paused, "an update that does not name the pause keeps it");
    assert_eq!(read.description.as_deref(), Some("still first"));
    queues.update("urgent").priority(3).paused(false).await.unwrap();
    let read = queues.get_by_name("urgent").await.unwrap();
    assert!(!read.is_paused);
    assert_eq!(read.priority.get(), 3);
    let status = queues.concurrency_status("urgent").await.unwrap();
    assert_eq!(status.concurrency_limit, Some(4));

    let err = queues.create("zero").priority(0).await.unwrap_err();
    assert!(err.is_client_side(), "{err}");
    assert!(err.to_string().contains("priority"), "{err}");
    let names: Vec<String> = queues
        .stream(Default::default())
        .map_ok(|q| q.name.to_string())
        .try_collect()
        .await
        .unwrap();
    assert!(
        !names.contains(&"zero".to_string()),
        "nothing was created: {names:?}"
    );
}

#[tokio::test]
async fn a_pool_lists_its_rust_worker_and_deletes_it() {
    let client = client().await;
    let pool = unique("rust-workers-pool");
    let flow: RustFlow = trivial(&unique("rust-listed"));
    let working = client
        .worker(&pool, [&flow])
        .create_pool(true)
        .name("listed-worker")
        .start()
        .await
        .unwrap();
    let workers = client.work_pools().workers(&pool);
    let listed: Vec<String> = workers
        .stream(Default::default())
        .map_ok(|w| w.name)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["listed-worker"]);
    working.shutdown();
    tokio::time::timeout(Duration::from_secs(60), working.wait())
        .await
        .unwrap()
        .unwrap();
    workers.delete_by_name("listed-worker").await.unwrap();
    let left = workers.list_page(&Default::default()).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let err = workers.delete_by_name("listed-worker").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// What Prefect's Python client creates: a pool of type `argv[2]` named `argv[1]` with its CLI's
/// default template, a limit of 7 and a description, and a queue of priority 2 in it.
const CREATE_POOL: &str = r#"
import asyncio, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkQueueCreate
from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

async def main():
    template = await get_default_base_job_template_for_infrastructure_type(sys.argv[2])
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(
            name=sys.argv[1], type=sys.argv[2], base_job_template=template,
            concurrency_limit=7, description="made in Python"))
        await client.create_work_queue(name="python-queue", work_pool_name=sys.argv[1], priority=2)

asyncio.run(main())
"#;

#[tokio::test]
async fn a_pool_made_by_prefects_python_client_reads_through_the_sdk_and_applies_back_unchanged() {
    let client = client().await;
    let name = unique("python-made-pool");
    python(client.api_url(), CREATE_POOL, &[&name, "process"]).await;
    let pools = client.work_pools();
    let pool = pools.get_by_name(&name).await.unwrap();
    assert_eq!(pool.type_, "process");
    assert_eq!(pool.concurrency_limit, Some(7));
    assert_eq!(pool.description.as_deref(), Some("made in Python"));
    let queue = pools.queues(&name).get_by_name("python-queue").await.unwrap();
    assert_eq!(queue.priority.get(), 2);
    // The same pool declared in Rust: Python's CLI template is the SDK's default, nothing to do.
    let spec = WorkPoolSpec::new(&name, "process")
        .concurrency_limit(7)
        .description("made in Python");
    let applied = pools.apply(&spec).await.unwrap();
    assert_eq!(applied.change, Change::Unchanged, "{:?}", applied.object);
}
