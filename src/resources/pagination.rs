//! Pagination over Prefect's limit/offset filter bodies: one page of a list (`list_page`), or
//! every item as a stream (`stream`), [`PAGE_SIZE`] at a time.

use std::collections::VecDeque;
use std::future::Future;

use futures_core::Stream;

use crate::resources::call;
use crate::types;
use crate::{Client, Error};

/// Items per request when a list is streamed; also the most one page may hold (the server's
/// cap for every list).
pub const PAGE_SIZE: u32 = 200;

/// A generated filter body of a list operation that pages by `limit` and `offset`.
pub(crate) trait Listing: Clone + Send + Sync + 'static {
    /// What the list holds.
    type Item: Send + 'static;
    /// The page's size, if set.
    fn limit(&self) -> Option<i64>;
    /// Points the body at one page.
    fn set_page(&mut self, offset: u64, limit: u32);
    /// Sends the list operation with this body.
    fn fetch(client: &Client, page: &Self) -> impl Future<Output = Result<Vec<Self::Item>, Error>> + Send;
}

/// Implements [`Listing`] for a generated body: `listing!(Body => Item, operation)`.
macro_rules! listing {
    ($($body:ty => $item:ty, $op:ident;)*) => {$(
        impl Listing for $body {
            type Item = $item;
            fn limit(&self) -> Option<i64> {
                self.limit
            }
            fn set_page(&mut self, offset: u64, limit: u32) {
                self.offset = offset;
                self.limit = Some(i64::from(limit));
            }
            async fn fetch(client: &Client, page: &Self) -> Result<Vec<$item>, Error> {
                call!(client, $op(page))
            }
        }
    )*};
}

listing! {
    types::ReadFlowsBody => types::Flow, read_flows;
    types::ReadFlowRunsBody => types::FlowRunResponse, read_flow_runs;
    types::ReadDeploymentsBody => types::DeploymentResponse, read_deployments;
    types::ReadVariablesBody => types::Variable, read_variables;
    types::ReadLogsBody => types::Log, read_logs;
    types::ReadArtifactsBody => types::Artifact, read_artifacts;
    types::ReadWorkPoolsBody => types::WorkPoolResponse, read_work_pools;
    types::ReadConcurrencyLimitsBody => types::ConcurrencyLimit, read_concurrency_limits;
    types::ReadAllConcurrencyLimitsV2Body => types::GlobalConcurrencyLimitResponse, read_all_concurrency_limits_v2;
}

/// One page: the filter's own `limit` (1 to [`PAGE_SIZE`], default the server's) and `offset`.
pub(crate) async fn page<L: Listing>(client: &Client, filter: &L) -> Result<Vec<L::Item>, Error> {
    if let Some(limit) = filter.limit()
        && !(1..=i64::from(PAGE_SIZE)).contains(&limit)
    {
        return Err(Error::invalid(
            "page size",
            format!("limit {limit}; ask for 1 to {PAGE_SIZE} per page, or stream() every item"),
        ));
    }
    L::fetch(client, filter).await
}

/// Every item matching `filter`, [`PAGE_SIZE`] per request, as the stream is consumed; the
/// filter's own `limit` and `offset` are replaced.
pub(crate) fn stream<L: Listing>(
    client: &Client,
    filter: L,
) -> impl Stream<Item = Result<L::Item, Error>> + Send + 'static + use<L> {
    let client = client.clone();
    paginate(PAGE_SIZE, move |offset, limit| {
        let (client, mut page) = (client.clone(), filter.clone());
        page.set_page(offset, limit);
        async move { L::fetch(&client, &page).await }
    })
}

/// Streams items page by page: `fetch(offset, limit)` returns one page; the stream ends after a
/// page shorter than `limit`, or after the first error (yielded as the last item).
pub(crate) fn paginate<T, F, Fut>(
    page_size: u32,
    fetch: F,
) -> impl Stream<Item = Result<T, Error>> + Send + 'static
where
    T: Send + 'static,
    F: Fn(u64, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<T>, Error>> + Send,
{
    struct Pages<T, F> {
        fetch: F,
        offset: u64,
        buffer: VecDeque<T>,
        done: bool,
    }
    let start = Pages {
        fetch,
        offset: 0,
        buffer: VecDeque::new(),
        done: false,
    };
    futures_util::stream::unfold(start, move |mut pages| async move {
        loop {
            if let Some(item) = pages.buffer.pop_front() {
                return Some((Ok(item), pages));
            }
            if pages.done {
                return None;
            }
            match (pages.fetch)(pages.offset, page_size).await {
                Ok(page) => {
                    pages.done = page.len() < page_size as usize;
                    pages.offset += page.len() as u64;
                    pages.buffer.extend(page);
                }
                Err(e) => {
                    pages.done = true;
                    return Some((Err(e), pages));
                }
            }
        }
    })
}

/// Builds a generated request body from JSON; a value the schema rejects is an input error.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    what: &'static str,
    value: serde_json::Value,
) -> Result<T, Error> {
    serde_json::from_value(value)
        .map_err(|e| Error::invalid(what, format!("{e}; check the value against Prefect's schema")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn streams_every_item_across_pages_then_ends() {
        let items: Vec<u32> = (0..7).collect();
        let stream = paginate(3, move |offset, limit| {
            let page: Vec<u32> = items
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .copied()
                .collect();
            async move { Ok(page) }
        });
        let got: Vec<u32> = stream.map(Result::unwrap).collect().await;
        assert_eq!(got, (0..7).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_error_is_the_last_item() {
        let stream = paginate(2, |offset, _| async move {
            if offset == 0 {
                Ok(vec![1, 2])
            } else {
                Err(Error::invalid("page", "boom"))
            }
        });
        let got: Vec<Result<i32, Error>> = stream.collect().await;
        assert_eq!(got.len(), 3);
        assert!(got[2].is_err());
    }

    #[tokio::test]
    async fn a_page_larger_than_the_server_serves_is_refused_before_sending() {
        // Port 9 (discard) is never asked: the check comes first.
        let client = Client::new("http://127.0.0.1:9/api").unwrap();
        for limit in [0, -1, i64::from(PAGE_SIZE) + 1] {
            let filter = types::ReadFlowsBody {
                limit: Some(limit),
                ..Default::default()
            };
            let err = page(&client, &filter).await.unwrap_err();
            assert!(err.is_client_side(), "{limit}: {err:?}");
            assert!(err.to_string().contains("1 to 200"), "{err}");
        }
    }
}
