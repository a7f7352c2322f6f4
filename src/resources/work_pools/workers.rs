//! The workers polling one work pool: list them, delete one.

use crate::resources::call;
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

    super::pool_list_verbs!("workers", ReadWorkersBody => WorkerResponse, read_workers);

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
