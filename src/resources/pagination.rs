//! Item streams over Prefect's limit/offset pagination.

use std::collections::VecDeque;
use std::future::Future;

use futures_core::Stream;

use crate::Error;

/// Items per request when a list is streamed.
pub const STREAM_PAGE_SIZE: u32 = 200;

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
}
