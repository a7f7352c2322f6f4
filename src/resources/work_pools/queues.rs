//! The work queues of one work pool: create (with priority, limit and description), get,
//! list, update, pause and resume, delete, and their concurrency status.

use std::num::NonZeroU64;

use crate::query::WorkQueueQuery;
use crate::resources::{call, generated_name, send_on_await};
use crate::types::{
    ReadWorkQueueConcurrencyStatusBody, WorkQueueConcurrencyStatus, WorkQueueCreate, WorkQueueResponse,
    WorkQueueUpdate,
};
use crate::{Client, Error};

use super::check_pool;

/// The work queues of one work pool; from [`WorkPools::queues`](super::WorkPools::queues).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use futures_util::TryStreamExt;
///
/// let queues = client.work_pools().queues("rust-pool");
/// queues.create("urgent").priority(1).concurrency_limit(2).await?;
/// queues.pause("urgent").await?;
/// let all: Vec<_> = queues.stream(Default::default()).try_collect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct WorkQueues<'a> {
    client: &'a Client,
    pool: String,
}

impl<'a> WorkQueues<'a> {
    pub(super) fn new(client: &'a Client, pool: &str) -> WorkQueues<'a> {
        WorkQueues {
            client,
            pool: pool.to_string(),
        }
    }

    /// Creates the work queue `name` in the pool: set its priority, limit and description, then
    /// await it (or [`send`](CreateWorkQueue::send) it).
    pub fn create(&self, name: &str) -> CreateWorkQueue {
        CreateWorkQueue {
            client: self.client.clone(),
            pool: self.pool.clone(),
            name: name.to_string(),
            priority: None,
            concurrency_limit: None,
            description: None,
            paused: false,
        }
    }

    /// Changes the work queue `name` of the pool: set what to change, then await it (or
    /// [`send`](UpdateWorkQueue::send) it). What is not set is left as it is.
    pub fn update(&self, name: &str) -> UpdateWorkQueue {
        UpdateWorkQueue {
            client: self.client.clone(),
            pool: self.pool.clone(),
            name: name.to_string(),
            priority: None,
            concurrency_limit: None,
            description: None,
            paused: None,
        }
    }

    /// The queue's concurrency now: its limit, and the runs holding its slots.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the requests.
    pub async fn concurrency_status(&self, name: &str) -> Result<WorkQueueConcurrencyStatus, Error> {
        let queue = self.get_by_name(name).await?;
        let body = ReadWorkQueueConcurrencyStatusBody::default();
        call!(self.client, read_work_queue_concurrency_status(&queue.id, &body))
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

    super::pool_list_verbs!("work queues", WorkQueueQuery => WorkQueueResponse, read_work_queues_in_work_pools);

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
        self.update(name).paused(true).send().await
    }

    /// Resumes a work queue of the pool.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn resume(&self, name: &str) -> Result<(), Error> {
        self.update(name).paused(false).send().await
    }

    fn check(&self, name: &str) -> Result<(), Error> {
        check_pool(&self.pool)?;
        crate::resources::check_name("work queue name", name)
    }
}

/// The settings a queue is created or updated with, as setters over `priority`,
/// `concurrency_limit` and `description` fields.
macro_rules! queue_setters {
    () => {
        /// Its priority in the pool: 1 is served first (a new queue's default: after the
        /// pool's other queues).
        pub fn priority(mut self, priority: u64) -> Self {
            self.priority = Some(priority);
            self
        }

        /// Runs of the queue at once, at most.
        pub fn concurrency_limit(mut self, limit: u64) -> Self {
            self.concurrency_limit = Some(limit);
            self
        }

        /// Its description.
        pub fn description(mut self, description: impl Into<String>) -> Self {
            self.description = Some(description.into());
            self
        }
    };
}

/// A work queue to create; from [`WorkQueues::create`]. Await it, or call
/// [`send`](CreateWorkQueue::send).
#[derive(Debug)]
#[must_use = "await it (or call .send()) to create the queue"]
pub struct CreateWorkQueue {
    client: Client,
    pool: String,
    name: String,
    priority: Option<u64>,
    concurrency_limit: Option<u64>,
    description: Option<String>,
    paused: bool,
}

impl CreateWorkQueue {
    queue_setters!();

    /// Created paused (workers pick up none of its runs).
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Creates the queue.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad pool or queue name or a priority of 0 (nothing sent);
    /// [`Error::Conflict`] if the pool has a queue of that name; [`Error::NotFound`] for no
    /// such pool; any error of the request.
    pub async fn send(self) -> Result<WorkQueueResponse, Error> {
        check_pool(&self.pool)?;
        let body = WorkQueueCreate {
            concurrency_limit: self.concurrency_limit,
            description: self.description,
            filter: None,
            is_paused: self.paused,
            name: generated_name("work queue name", &self.name)?,
            priority: checked_priority(self.priority)?,
        };
        call!(self.client, create_work_queue_in_work_pools(&self.pool, &body))
    }
}

/// What to change on a work queue; from [`WorkQueues::update`]. Await it, or call
/// [`send`](UpdateWorkQueue::send).
#[derive(Debug)]
#[must_use = "await it (or call .send()) to change the queue"]
pub struct UpdateWorkQueue {
    client: Client,
    pool: String,
    name: String,
    priority: Option<u64>,
    concurrency_limit: Option<u64>,
    description: Option<String>,
    paused: Option<bool>,
}

impl UpdateWorkQueue {
    queue_setters!();

    /// Paused (workers pick up none of its runs) or not.
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = Some(paused);
        self
    }

    /// Sends the change. The server's update always sets whether the queue is paused: left
    /// unset, it is read first and kept.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name or a priority of 0 (nothing sent);
    /// [`Error::NotFound`] when there is no such queue; any other error of the requests.
    pub async fn send(self) -> Result<(), Error> {
        let queues = WorkQueues::new(&self.client, &self.pool);
        queues.check(&self.name)?;
        let priority = checked_priority(self.priority)?;
        let is_paused = match self.paused {
            Some(paused) => paused,
            None => queues.get_by_name(&self.name).await?.is_paused,
        };
        let body = WorkQueueUpdate {
            concurrency_limit: self.concurrency_limit,
            description: self.description,
            filter: None,
            is_paused,
            last_polled: None,
            name: None,
            priority,
        };
        call!(
            self.client,
            update_work_queue_in_work_pools(&self.pool, &self.name, &body)
        )
    }
}

send_on_await! {
    CreateWorkQueue => WorkQueueResponse;
    UpdateWorkQueue => ();
}

/// A queue's priority as the server takes it: 1 or more.
fn checked_priority(priority: Option<u64>) -> Result<Option<NonZeroU64>, Error> {
    priority
        .map(|p| {
            NonZeroU64::new(p).ok_or_else(|| {
                Error::invalid(
                    "work queue priority",
                    "it is 0; 1 is the first priority, give 1 or more",
                )
            })
        })
        .transpose()
}
