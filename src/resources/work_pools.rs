//! Work pools and their work queues: create, read, list, pause and resume.

use futures_core::Stream;
use serde_json::json;

use crate::error::unwrap_response;
use crate::resources::check_name;
use crate::resources::pagination::{STREAM_PAGE_SIZE, paginate, typed};
use crate::types::{ReadWorkPoolsBody, WorkPoolResponse, WorkQueueResponse};
use crate::{Client, Error};

/// Work pools; from [`Client::work_pools`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let pools = client.work_pools();
/// pools.create("rust-pool", "process").await?;
/// pools.create_queue("rust-pool", "urgent").await?;
/// pools.pause("rust-pool").await?;
/// pools.resume("rust-pool").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct WorkPools<'a> {
    client: &'a Client,
}

impl<'a> WorkPools<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        WorkPools { client }
    }

    /// Creates a work pool of `pool_type` (e.g. `"process"`, `"docker"`, `"kubernetes"`).
    pub async fn create(&self, name: &str, pool_type: &str) -> Result<WorkPoolResponse, Error> {
        check_name("work pool name", name)?;
        let body = typed("work pool", json!({ "name": name, "type": pool_type }))?;
        unwrap_response(
            "create_work_pool",
            self.client.raw().create_work_pool(&body).await,
        )
        .await
    }

    /// Reads a work pool by name.
    pub async fn read(&self, name: &str) -> Result<WorkPoolResponse, Error> {
        check_name("work pool name", name)?;
        unwrap_response("read_work_pool", self.client.raw().read_work_pool(name).await).await
    }

    /// Every work pool matching `filter` (`ReadWorkPoolsBody::default()` for all).
    pub fn stream(
        &self,
        filter: ReadWorkPoolsBody,
    ) -> impl Stream<Item = Result<WorkPoolResponse, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(STREAM_PAGE_SIZE, move |offset, limit| {
            let (client, mut page) = (client.clone(), filter.clone());
            page.offset = offset;
            page.limit = Some(i64::from(limit));
            async move { unwrap_response("read_work_pools", client.raw().read_work_pools(&page).await).await }
        })
    }

    /// Stops workers of the pool from picking up runs.
    pub async fn pause(&self, name: &str) -> Result<(), Error> {
        self.set_paused(name, true).await
    }

    /// Lets workers of the pool pick up runs again.
    pub async fn resume(&self, name: &str) -> Result<(), Error> {
        self.set_paused(name, false).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), Error> {
        check_name("work pool name", name)?;
        let body = typed("work pool update", json!({ "is_paused": paused }))?;
        unwrap_response(
            "update_work_pool",
            self.client.raw().update_work_pool(name, &body).await,
        )
        .await
    }

    /// Creates a work queue in the pool.
    pub async fn create_queue(&self, pool: &str, name: &str) -> Result<WorkQueueResponse, Error> {
        check_name("work pool name", pool)?;
        check_name("work queue name", name)?;
        let body = typed("work queue", json!({ "name": name }))?;
        unwrap_response(
            "create_work_queue_in_work_pools",
            self.client
                .raw()
                .create_work_queue_in_work_pools(pool, &body)
                .await,
        )
        .await
    }

    /// Reads a work queue of the pool.
    pub async fn read_queue(&self, pool: &str, name: &str) -> Result<WorkQueueResponse, Error> {
        check_name("work pool name", pool)?;
        check_name("work queue name", name)?;
        unwrap_response(
            "read_work_queue_in_work_pools",
            self.client.raw().read_work_queue_in_work_pools(pool, name).await,
        )
        .await
    }

    /// The pool's work queues (a pool has few; one request).
    pub async fn queues(&self, pool: &str) -> Result<Vec<WorkQueueResponse>, Error> {
        check_name("work pool name", pool)?;
        let body = typed("work queue filter", json!({}))?;
        unwrap_response(
            "read_work_queues_in_work_pools",
            self.client
                .raw()
                .read_work_queues_in_work_pools(pool, &body)
                .await,
        )
        .await
    }

    /// Pauses a work queue of the pool.
    pub async fn pause_queue(&self, pool: &str, name: &str) -> Result<(), Error> {
        self.set_queue_paused(pool, name, true).await
    }

    /// Resumes a work queue of the pool.
    pub async fn resume_queue(&self, pool: &str, name: &str) -> Result<(), Error> {
        self.set_queue_paused(pool, name, false).await
    }

    async fn set_queue_paused(&self, pool: &str, name: &str, paused: bool) -> Result<(), Error> {
        check_name("work pool name", pool)?;
        check_name("work queue name", name)?;
        let body = typed("work queue update", json!({ "is_paused": paused }))?;
        unwrap_response(
            "update_work_queue_in_work_pools",
            self.client
                .raw()
                .update_work_queue_in_work_pools(pool, name, &body)
                .await,
        )
        .await
    }
}
