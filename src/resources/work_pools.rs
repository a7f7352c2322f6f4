//! Work pools and, through [`WorkPools::queues`], their work queues: create, get, list, pause
//! and resume, delete.

use futures_core::Stream;
use serde_json::Map;

use crate::query::{WorkPoolQuery, WorkQueueQuery};
use crate::resources::{call, generated_name, pagination};
use crate::types::{
    WorkPoolCreate, WorkPoolResponse, WorkPoolUpdate, WorkQueueCreate, WorkQueueResponse, WorkQueueUpdate,
};
use crate::{Client, Error};

/// Work pools; from [`Client::work_pools`]. Prefect addresses pools and their queues by name.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let pools = client.work_pools();
/// pools.create("rust-pool", "process").await?;
/// pools.queues("rust-pool").create("urgent").await?;
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

    /// Creates a work pool of `pool_type` (e.g. `"process"`, `"docker"`, `"kubernetes"`) with
    /// an empty base job template.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent); [`Error::Conflict`] if the name
    /// is taken; any error of the request.
    pub async fn create(&self, name: &str, pool_type: &str) -> Result<WorkPoolResponse, Error> {
        let body = WorkPoolCreate {
            base_job_template: Map::new(),
            concurrency_limit: None,
            description: None,
            is_paused: false,
            name: generated_name("work pool name", name)?,
            storage_configuration: None,
            type_: pool_type.to_string(),
        };
        call!(self.client, create_work_pool(&body))
    }

    /// The work pool named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_by_name(&self, name: &str) -> Result<WorkPoolResponse, Error> {
        check_pool(name)?;
        call!(self.client, read_work_pool(name))
    }

    /// One page of work pools matching `filter` (its `limit` and `offset` apply).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `limit` below 1 (nothing sent);
    /// [`Error::Validation`] for a filter or page size the server refuses; any other error of the request.
    pub async fn list_page(&self, filter: &WorkPoolQuery) -> Result<Vec<WorkPoolResponse>, Error> {
        pagination::page(self.client, filter).await
    }

    /// Every work pool matching `filter` (`WorkPoolQuery::default()` for all).
    ///
    /// # Errors
    /// The stream's last item is the error that stopped it: those of `list_page`, and an error
    /// of any page after the first.
    pub fn stream(
        &self,
        filter: WorkPoolQuery,
    ) -> impl Stream<Item = Result<WorkPoolResponse, Error>> + Send + use<> {
        pagination::stream(self.client, filter)
    }

    /// Deletes the work pool named `name` (and its queues).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete_by_name(&self, name: &str) -> Result<(), Error> {
        check_pool(name)?;
        call!(self.client, delete_work_pool(name))
    }

    /// Stops workers of the pool from picking up runs.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn pause(&self, name: &str) -> Result<(), Error> {
        self.set_paused(name, true).await
    }

    /// Lets workers of the pool pick up runs again.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn resume(&self, name: &str) -> Result<(), Error> {
        self.set_paused(name, false).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), Error> {
        check_pool(name)?;
        let body = WorkPoolUpdate {
            is_paused: Some(paused),
            ..Default::default()
        };
        call!(self.client, update_work_pool(name, &body))
    }

    /// The work queues of the pool `pool`: the same verbs, for its queues.
    pub fn queues(&self, pool: &str) -> WorkQueues<'a> {
        WorkQueues {
            client: self.client,
            pool: pool.to_string(),
        }
    }
}

/// The work queues of one work pool; from [`WorkPools::queues`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use futures_util::TryStreamExt;
///
/// let queues = client.work_pools().queues("rust-pool");
/// queues.create("urgent").await?;
/// queues.pause("urgent").await?;
/// let all: Vec<_> = queues.stream(Default::default()).try_collect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct WorkQueues<'a> {
    client: &'a Client,
    pool: String,
}

impl WorkQueues<'_> {
    /// Creates the work queue `name` in the pool.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad pool or queue name (nothing sent);
    /// [`Error::Conflict`] if the pool has a queue of that name; [`Error::NotFound`] for no
    /// such pool; any error of the request.
    pub async fn create(&self, name: &str) -> Result<WorkQueueResponse, Error> {
        check_pool(&self.pool)?;
        let body = WorkQueueCreate {
            concurrency_limit: None,
            description: None,
            filter: None,
            is_paused: false,
            name: generated_name("work queue name", name)?,
            priority: None,
        };
        call!(self.client, create_work_queue_in_work_pools(&self.pool, &body))
    }

    /// The work queue `name` of the pool.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_by_name(&self, name: &str) -> Result<WorkQueueResponse, Error> {
        self.check(name)?;
        call!(self.client, read_work_queue_in_work_pools(&self.pool, name))
    }

    /// One page of the pool's work queues matching `filter` (its `limit` and `offset` apply).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `limit` below 1 (nothing sent);
    /// [`Error::Validation`] for a filter or page size the server refuses; any other error of the request.
    pub async fn list_page(&self, filter: &WorkQueueQuery) -> Result<Vec<WorkQueueResponse>, Error> {
        check_pool(&self.pool)?;
        call!(self.client, read_work_queues_in_work_pools(&self.pool, filter))
    }

    /// Every work queue of the pool matching `filter` (`Default::default()` for all).
    ///
    /// # Errors
    /// The stream's last item is the error that stopped it: those of `list_page`, and an error
    /// of any page after the first.
    pub fn stream(
        &self,
        filter: WorkQueueQuery,
    ) -> impl Stream<Item = Result<WorkQueueResponse, Error>> + Send + use<> {
        let (client, pool) = (self.client.clone(), self.pool.clone());
        pagination::paginate_with(
            self.client,
            |queue: &WorkQueueResponse| queue.id,
            move |offset, limit| {
                let (client, pool) = (client.clone(), pool.clone());
                let mut page = filter.clone();
                page.offset = offset;
                page.limit = Some(i64::from(limit));
                async move {
                    check_pool(&pool)?;
                    call!(client, read_work_queues_in_work_pools(&pool, &page))
                }
            },
        )
    }

    /// Deletes the work queue `name` of the pool.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete_by_name(&self, name: &str) -> Result<(), Error> {
        self.check(name)?;
        call!(self.client, delete_work_queue_in_work_pools(&self.pool, name))
    }

    /// Pauses a work queue of the pool: workers do not pick up its runs.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn pause(&self, name: &str) -> Result<(), Error> {
        self.set_paused(name, true).await
    }

    /// Resumes a work queue of the pool.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn resume(&self, name: &str) -> Result<(), Error> {
        self.set_paused(name, false).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), Error> {
        self.check(name)?;
        let body = WorkQueueUpdate {
            concurrency_limit: None,
            description: None,
            filter: None,
            is_paused: paused,
            last_polled: None,
            name: None,
            priority: None,
        };
        call!(
            self.client,
            update_work_queue_in_work_pools(&self.pool, name, &body)
        )
    }

    fn check(&self, name: &str) -> Result<(), Error> {
        check_pool(&self.pool)?;
        crate::resources::check_name("work queue name", name)
    }
}

fn check_pool(name: &str) -> Result<(), Error> {
    crate::resources::check_name("work pool name", name)
}
