//! Tag concurrency limits (v1): at most N task runs with a tag at once.
//!
//! Prefect 3 stores each as a global limit named `tag:<tag>`; the API below is the v1 one
//! (`/concurrency_limits/...`).

use uuid::Uuid;

use crate::query::ConcurrencyLimitQuery;
use crate::resources::{call, check_limit, check_name};
use crate::types::{self, ConcurrencyLimit, MinimalConcurrencyLimitResponse};
use crate::{Client, Error};

/// Tag concurrency limits; from [`Client::concurrency_limits`]. A v1 limit's name is its tag.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use prefect_client::OptionalExt;
///
/// let limits = client.concurrency_limits();
/// limits.create("database", 5).await?;
/// assert_eq!(limits.get_by_tag("database").await?.concurrency_limit, 5);
/// assert!(limits.get_by_tag("no-such-tag").await.optional()?.is_none());
/// # Ok(()) }
/// ```
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
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad tag or a limit out of range (nothing
    /// sent); any other error of the request.
    pub async fn create(&self, tag: &str, limit: i64) -> Result<ConcurrencyLimit, Error> {
        check_name("tag", tag)?;
        check_limit(limit)?;
        let body = types::ConcurrencyLimitCreate {
            concurrency_limit: limit,
            tag: tag.to_string(),
        };
        call!(self.client, create_concurrency_limit(&body))
    }

    /// The limit with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no limit has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<ConcurrencyLimit, Error> {
        call!(self.client, read_concurrency_limit(&id))
    }

    /// The limit of `tag`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_by_tag(&self, tag: &str) -> Result<ConcurrencyLimit, Error> {
        check_name("tag", tag)?;
        call!(self.client, read_concurrency_limit_by_tag(tag))
    }

    crate::resources::list_verbs!("tag concurrency limits", ConcurrencyLimitQuery => ConcurrencyLimit);

    /// Deletes the limit with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no limit has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_concurrency_limit(&id)).map(drop)
    }

    /// Deletes the limit of `tag`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete_by_tag(&self, tag: &str) -> Result<(), Error> {
        check_name("tag", tag)?;
        call!(self.client, delete_concurrency_limit_by_tag(tag)).map(drop)
    }

    /// Frees every slot of `tag`'s limit (to set its holders instead, call
    /// `reset_concurrency_limit_by_tag` on [`Client::raw`] with a `slot_override`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn reset_by_tag(&self, tag: &str) -> Result<(), Error> {
        check_name("tag", tag)?;
        let body = types::ResetConcurrencyLimitByTagBody { slot_override: None };
        call!(self.client, reset_concurrency_limit_by_tag(tag, &body)).map(drop)
    }

    /// Takes a slot of each tag's limit for `task_run_id`; [`Error::SlotsUnavailable`] (423)
    /// when one is full. Returns the limits that apply.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no tags or a bad tag (nothing sent);
    /// [`Error::SlotsUnavailable`] when a tag's limit is full (try again after
    /// [`Error::retry_after`]); any other error of the request.
    pub async fn increment(
        &self,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
        task_run_id: Uuid,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let names = checked_tags(tags)?;
        let body = types::IncrementConcurrencyLimitsV1Body { names, task_run_id };
        call!(self.client, increment_concurrency_limits_v1(&body))
    }

    /// Gives back the slots `task_run_id` holds on each tag's limit.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no tags or a bad tag (nothing sent); any other error of the
    /// request.
    pub async fn decrement(
        &self,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
        task_run_id: Uuid,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let names = checked_tags(tags)?;
        let body = types::DecrementConcurrencyLimitsV1Body { names, task_run_id };
        call!(self.client, decrement_concurrency_limits_v1(&body))
    }
}

fn checked_tags(tags: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Vec<String>, Error> {
    let tags = tags
        .into_iter()
        .map(|t| check_name("tag", t.as_ref()).map(|()| t.as_ref().to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if tags.is_empty() {
        return Err(Error::invalid("tags", "no tags given; name at least one"));
    }
    Ok(tags)
}
