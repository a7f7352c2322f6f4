//! Work pools: create (with the worker type's default base job template, as Prefect's CLI
//! does), apply a [`WorkPoolSpec`], get, list, update, pause and resume, delete, their
//! concurrency status; through [`WorkPools::queues`] their work queues, and through
//! [`WorkPools::workers`] the workers polling them.

mod queues;
mod spec;
mod workers;

pub use queues::{CreateWorkQueue, UpdateWorkQueue, WorkQueues};
pub use spec::{RUST_WORKER_TYPE, WorkPoolSpec};
pub use workers::PoolWorkers;

use serde_json::{Map, Value};

use crate::query::WorkPoolQuery;
use crate::resources::{Applied, Change, call, send_on_await};
use crate::types::{
    ReadWorkPoolConcurrencyStatusBody, WorkPoolConcurrencyStatus, WorkPoolResponse, WorkPoolUpdate,
};
use crate::{Client, Error, OptionalExt};

/// Work pools; from [`Client::work_pools`]. Prefect addresses pools and their queues by name.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use prefect_client::resources::work_pools::WorkPoolSpec;
///
/// let pools = client.work_pools();
/// // A process pool with Prefect's default process job template and at most 3 runs at once:
/// // created, changed to match, or left as it is.
/// let applied = pools.apply(&WorkPoolSpec::new("etl", "process").concurrency_limit(3)).await?;
/// println!("{} {}", applied.change, applied.object.id);
/// pools.queues("etl").create("urgent").priority(1).concurrency_limit(2).await?;
/// pools.update("etl").description("nightly loads").await?;
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
    /// that worker type's default base job template, as `prefect work-pool create` does (an
    /// empty one for a type the server knows no template for); [`apply`](WorkPools::apply) a
    /// [`WorkPoolSpec`] for anything more.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent); [`Error::Conflict`] if the name
    /// is taken; any error of the requests.
    pub async fn create(&self, name: &str, pool_type: &str) -> Result<WorkPoolResponse, Error> {
        let spec = WorkPoolSpec::new(name, pool_type);
        let body = spec.create_body(self.client).await?;
        call!(self.client, create_work_pool(&body))
    }

    /// Creates the pool `spec` declares, or changes the pool of that name to match it (base job
    /// template, description, concurrency limit, paused), or leaves it as it is; says which.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent), or a pool of that name of another
    /// type (a pool's type cannot change); any error of the requests.
    pub async fn apply(&self, spec: &WorkPoolSpec) -> Result<Applied<WorkPoolResponse>, Error> {
        let body = spec.create_body(self.client).await?;
        let Some(existing) = self.get_by_name(spec.name()).await.optional()? else {
            return match call!(self.client, create_work_pool(&body)) {
                Ok(pool) => Ok(Applied::new(pool, Change::Created)),
                // Created meanwhile by another process: compared as any existing pool.
                Err(e) if e.is_conflict() => Box::pin(self.apply(spec)).await,
                Err(e) => Err(e),
            };
        };
        if existing.type_ != body.type_ {
            return Err(Error::invalid(
                "work pool type",
                format!(
                    "the pool {:?} exists with type {:?}, not {:?}; a pool's type cannot change: delete it, or give another name",
                    spec.name(),
                    existing.type_,
                    body.type_
                ),
            ));
        }
        let wanted = WorkPoolUpdate {
            base_job_template: Some(body.base_job_template),
            concurrency_limit: body.concurrency_limit,
            description: body.description,
            is_paused: Some(body.is_paused),
            storage_configuration: None,
        };
        if matches_pool(&existing, &wanted) {
            return Ok(Applied::new(existing, Change::Unchanged));
        }
        call!(self.client, update_work_pool(spec.name(), &wanted))?;
        Ok(Applied::new(
            self.get_by_name(spec.name()).await?,
            Change::Updated,
        ))
    }

    /// The default base job template of workers of `pool_type`, as Prefect's CLI finds it (the
    /// server's worker metadata, which it answers offline too); `None` for a type it does not
    /// know.
    ///
    /// # Errors
    /// Any error of the request.
    pub async fn default_base_job_template(
        &self,
        pool_type: &str,
    ) -> Result<Option<Map<String, Value>>, Error> {
        spec::default_base_job_template(self.client, pool_type).await
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

    crate::resources::list_verbs!("work pools", WorkPoolQuery => WorkPoolResponse);

    /// Changes the work pool `name`: set what to change, then await it (or
    /// [`send`](UpdateWorkPool::send) it). What is not set is left as it is.
    pub fn update(&self, name: &str) -> UpdateWorkPool {
        UpdateWorkPool {
            client: self.client.clone(),
            name: name.to_string(),
            body: WorkPoolUpdate::default(),
        }
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
        self.update(name).paused(true).send().await
    }

    /// Lets workers of the pool pick up runs again.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn resume(&self, name: &str) -> Result<(), Error> {
        self.update(name).paused(false).send().await
    }

    /// The pool's concurrency now: its limit, the slots its runs hold, and each queue's.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn concurrency_status(&self, name: &str) -> Result<WorkPoolConcurrencyStatus, Error> {
        check_pool(name)?;
        let body = ReadWorkPoolConcurrencyStatusBody::default();
        call!(self.client, read_work_pool_concurrency_status(name, &body))
    }

    /// The work queues of the pool `pool`: the same verbs, for its queues.
    pub fn queues(&self, pool: &str) -> WorkQueues<'a> {
        WorkQueues::new(self.client, pool)
    }

    /// The workers polling the pool `pool`: list them, delete one.
    pub fn workers(&self, pool: &str) -> PoolWorkers<'a> {
        PoolWorkers::new(self.client, pool)
    }
}

/// Whether the pool as the server has it already is what `wanted` would make it.
fn matches_pool(pool: &WorkPoolResponse, wanted: &WorkPoolUpdate) -> bool {
    wanted.base_job_template.as_ref() == Some(&pool.base_job_template)
        && wanted.concurrency_limit == pool.concurrency_limit
        && wanted.description.as_deref().unwrap_or_default()
            == pool.description.as_deref().unwrap_or_default()
        && wanted.is_paused == Some(pool.is_paused)
}

/// What to change on a work pool; from [`WorkPools::update`]. Await it, or call
/// [`send`](UpdateWorkPool::send).
#[derive(Debug)]
#[must_use = "await it (or call .send()) to change the pool"]
pub struct UpdateWorkPool {
    client: Client,
    name: String,
    body: WorkPoolUpdate,
}

impl UpdateWorkPool {
    /// Its description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.body.description = Some(description.into());
        self
    }

    /// Its base job template (`job_configuration` and `variables`, as Prefect's CLI writes it).
    pub fn base_job_template(mut self, template: Map<String, Value>) -> Self {
        self.body.base_job_template = Some(template);
        self
    }

    /// Runs of the pool at once, at most.
    pub fn concurrency_limit(mut self, limit: u64) -> Self {
        self.body.concurrency_limit = Some(limit);
        self
    }

    /// Paused (workers pick up none of its runs) or not.
    pub fn paused(mut self, paused: bool) -> Self {
        self.body.is_paused = Some(paused);
        self
    }

    /// Sends the change.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent); [`Error::NotFound`] when there is
    /// no such pool; [`Error::Validation`] for a template the server refuses; any other error
    /// of the request.
    pub async fn send(self) -> Result<(), Error> {
        check_pool(&self.name)?;
        call!(self.client, update_work_pool(&self.name, &self.body))
    }
}

send_on_await! {
    UpdateWorkPool => ();
}

/// The two list verbs of a pool's queues or workers (a struct with `client` and `pool`
/// fields): `list_page(&query)` and `stream(query)` over the generated list call `$op`.
macro_rules! pool_list_verbs {
    ($what:literal, $query:ty => $item:ty, $op:ident) => {
        #[doc = concat!("One page of the pool's ", $what, " matching `query` (its `limit` and `offset` apply).")]
        ///
        /// # Errors
        /// [`Error::InvalidInput`] for a bad pool name or a `limit` below 1 (nothing sent);
        /// [`Error::NotFound`] for no such pool; any other error of the request.
        pub async fn list_page(&self, query: &$query) -> Result<Vec<$item>, Error> {
            super::check_pool(&self.pool)?;
            call!(self.client, $op(&self.pool, query))
        }

        #[doc = concat!("Every one of the pool's ", $what, " matching `query` (`Default::default()` for all).")]
        ///
        /// # Errors
        /// The stream's last item is the error that stopped it: those of `list_page`, and an
        /// error of any page after the first.
        pub fn stream(
            &self,
            query: $query,
        ) -> impl ::futures_core::Stream<Item = Result<$item, Error>> + Send + use<> {
            super::pool_list(
                self.client,
                &self.pool,
                query,
                |page, offset, limit| {
                    page.offset = offset;
                    page.limit = Some(i64::from(limit));
                },
                |item: &$item| item.id,
                |client, pool, page| async move {
                    super::check_pool(&pool)?;
                    call!(client, $op(&pool, &page))
                },
            )
        }
    };
}
use pool_list_verbs;

/// Every item of a list of the pool `pool`, paged as it is consumed: `at` sets a page's `offset`
/// and `limit` on the query, `read` asks for the page, `id` tells repeats apart.
fn pool_list<Q, T, Fut>(
    client: &Client,
    pool: &str,
    query: Q,
    at: fn(&mut Q, u64, u32),
    id: fn(&T) -> uuid::Uuid,
    read: fn(Client, String, Q) -> Fut,
) -> impl futures_core::Stream<Item = Result<T, Error>> + Send + use<Q, T, Fut>
where
    Q: Clone + Send + Sync + 'static,
    T: Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<T>, Error>> + Send + 'static,
{
    let (owned, pool) = (client.clone(), pool.to_string());
    crate::resources::pagination::paginate_with(client, id, move |offset, limit| {
        let mut page = query.clone();
        at(&mut page, offset, limit);
        read(owned.clone(), pool.clone(), page)
    })
}

fn check_pool(name: &str) -> Result<(), Error> {
    crate::resources::check_name("work pool name", name)
}
