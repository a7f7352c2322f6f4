//! The workers polling one work pool: list them, delete one.

use futures_core::Stream;

use crate::resources::{call, pagination};
use crate::types::{ReadWorkersBody, WorkerResponse};
use crate::{Client, Error};

use super::check_pool;

/// The workers of one work pool, as the pool lists them (name, status, last heartbeat); from
/// [`WorkPools::workers`](super::WorkPools::workers).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use futures_util::TryStreamExt;
///
/// let workers = client.work_pools().workers("etl");
/// for worker in workers.stream(Default::default()).try_collect::<Vec<_>>().await? {
///     println!("{} {:?}", worker.name, worker.status);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PoolWorkers<'a> {
    client: &'a Client,
    pool: String,
}

impl<'a> PoolWorkers<'a> {
    pub(super) fn new(client: &'a Client, pool: &str) -> PoolWorkers<'a> {
        PoolWorkers {
            client,
            pool: pool.to_string(),
        }
    }

    /// One page of the pool's workers matching `filter` (its `limit` and `offset` apply).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad pool name (nothing sent); [`Error::NotFound`] for no
    /// such pool; any other error of the request.
    pub async fn list_page(&self, filter: &ReadWorkersBody) -> Result<Vec<WorkerResponse>, Error> {
        check_pool(&self.pool)?;
        call!(self.client, read_workers(&self.pool, filter))
    }

    /// Every worker of the pool matching `filter` (`Default::default()` for all).
    ///
    /// # Errors
    /// The stream's last item is the error that stopped it: those of `list_page`, and an error
    /// of any page after the first.
    pub fn stream(
        &self,
        filter: ReadWorkersBody,
    ) -> impl Stream<Item = Result<WorkerResponse, Error>> + Send + use<> {
        let (client, pool) = (self.client.clone(), self.pool.clone());
        pagination::paginate_with(
            self.client,
            |worker: &WorkerResponse| worker.id,
            move |offset, limit| {
                let (client, pool) = (client.clone(), pool.clone());
                let mut page = filter.clone();
                page.offset = offset;
                page.limit = Some(i64::from(limit));
                async move {
                    check_pool(&pool)?;
                    call!(client, read_workers(&pool, &page))
                }
            },
        )
    }

    /// Deletes the worker `name` from the pool's list (a worker still running heartbeats again
    /// and is listed again).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent); [`Error::NotFound`] when the pool
    /// has no such worker; any other error of the request.
    pub async fn delete_by_name(&self, name: &str) -> Result<(), Error> {
        check_pool(&self.pool)?;
        crate::resources::check_name("worker name", name)?;
        call!(self.client, delete_worker(&self.pool, name))
    }
}
