//! Tag concurrency limits (v1): at most N task runs with a tag at once.
//!
//! Prefect 3 stores each as a global limit named `tag:<tag>`; the API below is the v1 one
//! (`/concurrency_limits/...`).

use futures_core::Stream;
use futures_util::TryStreamExt;
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::pagination::paginate;
use crate::resources::{check_limit, check_name};
use crate::types::{self, ConcurrencyLimit, MinimalConcurrencyLimitResponse};
use crate::{Client, Error};

/// The most limits one page of [`ConcurrencyLimits::list_page`] returns (the server's cap).
pub const PAGE_SIZE: u32 = 200;

/// Tag concurrency limits; from [`Client::concurrency_limits`].
#[derive(Clone, Copy, Debug)]
pub struct ConcurrencyLimits<'a> {
    client: &'a Client,
}

impl<'a> ConcurrencyLimits<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        ConcurrencyLimits { client }
    }

    /// Creates the limit for `tag`, or sets the limit of the existing one (the server upserts).
    ///
    /// `limit` is 0 to 2,147,483,647; an empty tag or one with `/ % & > <` is rejected before
    /// any request is sent.
    pub async fn create(&self, tag: &str, limit: i64) -> Result<ConcurrencyLimit, Error> {
        check_name("tag", tag)?;
        check_limit(limit)?;
        let body = types::ConcurrencyLimitCreate {
            tag: tag.to_string(),
            concurrency_limit: limit,
        };
        unwrap_response(
            "create_concurrency_limit",
            self.client.raw().create_concurrency_limit(&body).await,
        )
        .await
    }

    /// Reads a limit by id.
    pub async fn read(&self, id: Uuid) -> Result<ConcurrencyLimit, Error> {
        unwrap_response(
            "read_concurrency_limit",
            self.client.raw().read_concurrency_limit(&id).await,
        )
        .await
    }

    /// Reads the limit of `tag`; [`Error::NotFound`] when there is none.
    pub async fn read_by_tag(&self, tag: &str) -> Result<ConcurrencyLimit, Error> {
        check_name("tag", tag)?;
        unwrap_response(
            "read_concurrency_limit_by_tag",
            self.client.raw().read_concurrency_limit_by_tag(tag).await,
        )
        .await
    }

    /// One page of limits: at most `limit` (up to [`PAGE_SIZE`]) from `offset`.
    pub async fn list_page(&self, offset: u64, limit: u32) -> Result<Vec<ConcurrencyLimit>, Error> {
        if limit == 0 || limit > PAGE_SIZE {
            return Err(Error::invalid(
                "page size",
                format!("{limit}; ask for 1 to {PAGE_SIZE} per page"),
            ));
        }
        let body = types::ReadConcurrencyLimitsBody {
            limit: Some(i64::from(limit)),
            offset,
        };
        unwrap_response(
            "read_concurrency_limits",
            self.client.raw().read_concurrency_limits(&body).await,
        )
        .await
    }

    /// Every limit, reading page after page.
    pub async fn list(&self) -> Result<Vec<ConcurrencyLimit>, Error> {
        self.stream().try_collect().await
    }

    /// Every limit as a stream, reading page after page as it is consumed.
    pub fn stream(&self) -> impl Stream<Item = Result<ConcurrencyLimit, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(PAGE_SIZE, move |offset, limit| {
            let client = client.clone();
            async move { client.concurrency_limits().list_page(offset, limit).await }
        })
    }

    /// Deletes a limit by id.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        unwrap_response(
            "delete_concurrency_limit",
            self.client.raw().delete_concurrency_limit(&id).await,
        )
        .await
        .map(drop)
    }

    /// Deletes the limit of `tag`.
    pub async fn delete_by_tag(&self, tag: &str) -> Result<(), Error> {
        check_name("tag", tag)?;
        unwrap_response(
            "delete_concurrency_limit_by_tag",
            self.client.raw().delete_concurrency_limit_by_tag(tag).await,
        )
        .await
        .map(drop)
    }

    /// Frees every slot of `tag`'s limit, or sets its holders to `slot_override` (task run ids).
    pub async fn reset_by_tag(&self, tag: &str, slot_override: Option<Vec<Uuid>>) -> Result<(), Error> {
        check_name("tag", tag)?;
        let body = types::ResetConcurrencyLimitByTagBody { slot_override };
        unwrap_response(
            "reset_concurrency_limit_by_tag",
            self.client.raw().reset_concurrency_limit_by_tag(tag, &body).await,
        )
        .await
        .map(drop)
    }

    /// Takes a slot of each tag's limit for `task_run_id`; [`Error::SlotsUnavailable`] (423)
    /// when one is full. Returns the limits that apply.
    pub async fn increment(
        &self,
        tags: &[&str],
        task_run_id: Uuid,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let names = checked_tags(tags)?;
        let body = types::IncrementConcurrencyLimitsV1Body { names, task_run_id };
        unwrap_response(
            "increment_concurrency_limits_v1",
            self.client.raw().increment_concurrency_limits_v1(&body).await,
        )
        .await
    }

    /// Gives back the slots `task_run_id` holds on each tag's limit.
    pub async fn decrement(
        &self,
        tags: &[&str],
        task_run_id: Uuid,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let names = checked_tags(tags)?;
        let body = types::DecrementConcurrencyLimitsV1Body { names, task_run_id };
        unwrap_response(
            "decrement_concurrency_limits_v1",
            self.client.raw().decrement_concurrency_limits_v1(&body).await,
        )
        .await
    }
}

fn checked_tags(tags: &[&str]) -> Result<Vec<String>, Error> {
    if tags.is_empty() {
        return Err(Error::invalid("tags", "no tags given; name at least one"));
    }
    tags.iter()
        .map(|t| check_name("tag", t).map(|()| t.to_string()))
        .collect()
}
