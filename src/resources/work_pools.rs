//! Work pools and their work queues: create, get, list, pause and resume.

use futures_core::Stream;
use serde_json::json;

use crate::resources::pagination::{self, typed};
use crate::resources::{call, check_name};
use crate::types::{ReadWorkPoolsBody, WorkPoolResponse, WorkQueueResponse};
use crate::{Client, Error};

/// Work pools; from [`Client::work_pools`]. Prefect addresses pools and their queues by name.
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

    /// Creates a work pool of `pool_type` (e.g. `"process"`, `"docker"`, `"kubernetes"`);
    /// [`Error::Conflict`] if the name is taken.
    pub async fn create(&self, name: &str, pool_type: &str) -> Result<WorkPoolResponse, Error> {
        check_name("work pool name", name)?;
        let body = typed("work pool", json!({ "name": name, "type": pool_type }))?;
        call!(self.client, create_work_pool(&body))
    }

    /// The work pool named `name`.
    pub async fn get_by_name(&self, name: &str) -> Result<WorkPoolResponse, Error> {
        check_name("work pool name", name)?;
        call!(self.client, read_work_pool(name))
    }

    /// One page of work pools matching `filter` (its `limit`, at most 200, and `offset` apply).
    pub async fn list_page(&self, filter: &ReadWorkPoolsBody) -> Result<Vec<WorkPoolResponse>, Error> {
        pagination::page(self.client, filter).await
    }

    /// Every work pool matching `filter` (`ReadWorkPoolsBody::default()` for all).
    pub fn stream(
        &self,
        filter: ReadWorkPoolsBody,
    ) -> impl Stream<Item = Result<WorkPoolResponse, Error>> + Send + use<> {
        pagination::stream(self.client, filter)
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
        call!(self.client, update_work_pool(name, &body))
    }

    /// Creates a work queue in the pool.
    pub async fn create_queue(&self, pool: &str, name: &str) -> Result<WorkQueueResponse, Error> {
        check_name("work pool name", pool)?;
        check_name("work queue name", name)?;
        let body = typed("work queue", json!({ "name": name }))?;
        call!(self.client, create_work_queue_in_work_pools(pool, &body))
    }

    /// The work queue `name` of the pool.
    pub async fn get_queue_by_name(&self, pool: &str, name: &str) -> Result<WorkQueueResponse, Error> {
        check_name("work pool name", pool)?;
        check_name("work queue name", name)?;
        call!(self.client, read_work_queue_in_work_pools(pool, name))
    }

    /// Every work queue of the pool (a pool has few: one request).
    pub async fn list_queues(&self, pool: &str) -> Result<Vec<WorkQueueResponse>, Error> {
        check_name("work pool name", pool)?;
        let body = typed("work queue filter", json!({}))?;
        call!(self.client, read_work_queues_in_work_pools(pool, &body))
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
        call!(self.client, update_work_queue_in_work_pools(pool, name, &body))
    }
}
