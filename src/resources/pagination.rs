//! Pagination over Prefect's limit/offset filter bodies: one page of a list (`list_page`), or
//! every item as a stream (`stream`).
//!
//! A stream yields every object that exists while it runs exactly once, whatever is created or
//! deleted meanwhile (objects created meanwhile may or may not appear). Offsets alone cannot
//! promise that: a deletion before the current page shifts the rest back (one is skipped), a
//! creation shifts it on (one repeats). So a stream orders the list by a key it can compare
//! itself (the id, descending, for flow runs, task runs and artifacts; the creation time for
//! flows, deployments and variables; the timestamp for logs), and each page is read from one
//! item before where the last one ended: that item, already seen, shows the page is contiguous
//! with what came before; if it is not, the stream steps back. Lists the server orders by name
//! (work pools, queues, concurrency limits, block types and documents), or by a sort the caller chose, are read by offset,
//! with repeats dropped by id.
//!
//! Page size: [`PAGE_SIZE`] per request, or the server's own cap when it is lower
//! (`PREFECT_SERVER_API_DEFAULT_LIMIT`): a 422 naming the cap is read, remembered for the
//! client and its clones, and the page asked again.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_core::Stream;
use uuid::Uuid;

use crate::resources::call;
use crate::types;
use crate::{Client, Error};

/// Items per request when a list is streamed, unless the server caps pages lower.
pub(crate) const PAGE_SIZE: u32 = 200;

/// Where an item sits in the order a stream reads a list in: the server returns items by
/// ascending key. Items with equal keys (two objects created in the same microsecond) come in
/// an order only the server knows, so those are told apart by id.
pub(crate) type Key = (i128, u128);

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
    /// The item's id, to drop repeats.
    fn id(item: &Self::Item) -> Uuid;
    /// Orders the body by a key a stream can compare, when the caller chose no sort or chose
    /// that one, and returns how to read an item's key; `None`: the list is read by offset.
    fn keyed(&mut self) -> Option<fn(&Self::Item) -> Key>;
}

/// Ids descending, as the key of ascending order.
fn id_desc(id: Uuid) -> Key {
    (0, u128::MAX - id.as_u128())
}

/// A time (descending with `desc`), as the key of ascending order.
pub(crate) fn time(at: Option<chrono::DateTime<chrono::Utc>>, desc: bool) -> Key {
    let micros = i128::from(at.map_or(i64::MIN, |t| t.timestamp_micros()));
    (if desc { -micros } else { micros }, 0)
}

/// Implements [`Listing`]: `Body => Item, operation, id |item| .., keyed sort Sort::Variant by |item| ..`.
macro_rules! listing {
    ($($body:ty => $item:ty, $op:ident, id $id:expr, $(sort $sort:expr => $key:expr)?;)*) => {$(
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
            fn id(item: &$item) -> Uuid {
                let id: fn(&$item) -> Uuid = $id;
                id(item)
            }
            #[allow(unreachable_code, unused_variables)]
            fn keyed(&mut self) -> Option<fn(&$item) -> Key> {
                $(
                    let sort = $sort;
                    match &self.sort {
                        None => self.sort = Some(sort),
                        Some(chosen) if *chosen == sort => {}
                        Some(_) => return None,
                    }
                    return Some($key);
                )?
                None
            }
        }
    )*};
}

listing! {
    crate::query::FlowQuery => types::Flow, read_flows, id |f| f.id,
        sort types::FlowSort::CreatedDesc => |f| time(f.created, true);
    crate::query::FlowRunQuery => types::FlowRunResponse, read_flow_runs, id |r| r.id,
        sort types::FlowRunSort::IdDesc => |r| id_desc(r.id);
    crate::query::TaskRunQuery => types::TaskRun, read_task_runs, id |r| r.id,
        sort types::TaskRunSort::IdDesc => |r| id_desc(r.id);
    crate::query::DeploymentQuery => types::DeploymentResponse, read_deployments, id |d| d.id,
        sort types::DeploymentSort::CreatedDesc => |d| time(d.created, true);
    crate::query::VariableQuery => types::Variable, read_variables, id |v| v.id,
        sort types::VariableSort::CreatedDesc => |v| time(v.created, true);
    crate::query::LogQuery => types::Log, read_logs, id |l| l.id,
        sort types::LogSort::TimestampAsc => |l| time(Some(l.timestamp), false);
    crate::query::ArtifactQuery => types::Artifact, read_artifacts, id |a| a.id.unwrap_or_default(),
        sort types::ArtifactSort::IdDesc => |a| id_desc(a.id.unwrap_or_default());
    crate::query::WorkPoolQuery => types::WorkPoolResponse, read_work_pools, id |p| p.id,;
    crate::query::ConcurrencyLimitQuery => types::ConcurrencyLimit, read_concurrency_limits, id |l| l.id,;
    crate::query::GlobalConcurrencyLimitQuery => types::GlobalConcurrencyLimitResponse, read_all_concurrency_limits_v2, id |l| l.id,;
    crate::query::BlockDocumentQuery => types::BlockDocument, read_block_documents, id |d| d.id,;
    crate::query::BlockSchemaQuery => types::BlockSchema, read_block_schemas, id |s| s.id,;
    crate::query::BlockTypeQuery => types::BlockType, read_block_types, id |t| t.id,;
}

/// One page: the filter's own `limit` (default the server's) and `offset`.
pub(crate) async fn page<L: Listing>(client: &Client, filter: &L) -> Result<Vec<L::Item>, Error> {
    if let Some(limit) = filter.limit()
        && limit < 1
    {
        return Err(Error::invalid(
            "page size",
            format!("limit {limit}; ask for at least 1 item per page, or stream() every item"),
        ));
    }
    L::fetch(client, filter).await
}

/// Every item matching `filter`, page by page as the stream is consumed; the filter's own
/// `limit` and `offset` are replaced. See the module documentation for what it promises.
pub(crate) fn stream<L: Listing>(
    client: &Client,
    mut filter: L,
) -> impl Stream<Item = Result<L::Item, Error>> + Send + 'static + use<L> {
    let key = filter.keyed();
    let cap = client.page_cap.clone();
    let client = client.clone();
    let fetch = move |offset: u64, limit: u32| {
        let (client, mut page) = (client.clone(), filter.clone());
        page.set_page(offset, limit);
        async move { L::fetch(&client, &page).await }
    };
    Pages::new(cap, fetch, L::id, key).into_stream()
}

/// Streams a list the caller pages itself (`fetch(offset, limit)` gives one page), by offset
/// with repeats dropped by `id`.
pub(crate) fn paginate_with<T, F, Fut>(
    client: &Client,
    id: fn(&T) -> Uuid,
    fetch: F,
) -> impl Stream<Item = Result<T, Error>> + Send + 'static + use<T, F, Fut>
where
    T: Send + 'static,
    F: Fn(u64, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<T>, Error>> + Send,
{
    Pages::new(client.page_cap.clone(), fetch, id, None).into_stream()
}

/// The state of one stream over a list.
struct Pages<T, F> {
    fetch: F,
    id: fn(&T) -> Uuid,
    key: Option<fn(&T) -> Key>,
    /// The page size, shared by the client's streams: lowered to the server's cap when it
    /// refuses a larger page.
    cap: Arc<AtomicU32>,
    /// Where the next page starts: the position of the last item yielded (read again as the
    /// anchor), or 0.
    offset: u64,
    /// The newest key yielded, and the ids yielded with it (items of equal keys).
    last: Option<(Key, HashSet<Uuid>)>,
    /// Every id yielded, for lists read by offset.
    seen: HashSet<Uuid>,
    buffer: VecDeque<T>,
    done: bool,
}

impl<T, F, Fut> Pages<T, F>
where
    T: Send + 'static,
    F: Fn(u64, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<T>, Error>> + Send,
{
    fn new(cap: Arc<AtomicU32>, fetch: F, id: fn(&T) -> Uuid, key: Option<fn(&T) -> Key>) -> Self {
        Pages {
            fetch,
            id,
            key,
            cap,
            offset: 0,
            last: None,
            seen: HashSet::new(),
            buffer: VecDeque::new(),
            done: false,
        }
    }

    fn into_stream(self) -> impl Stream<Item = Result<T, Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut pages| async move {
            loop {
                if let Some(item) = pages.buffer.pop_front() {
                    return Some((Ok(item), pages));
                }
                if pages.done {
                    return None;
                }
                if let Err(e) = pages.next_page().await {
                    pages.done = true;
                    return Some((Err(e), pages));
                }
            }
        })
    }

    /// One page at the server's cap: a refusal naming a lower cap lowers it and asks again.
    /// Pages overlap by one item: a cap below two cannot make progress, and the server's own
    /// refusal (naming its cap) is the answer.
    async fn read(fetch: &F, cap: &AtomicU32, offset: u64) -> Result<(Vec<T>, u32), Error> {
        let size = cap.load(Ordering::Relaxed).max(2);
        within_server_cap(cap, size, 2, |size| fetch(offset, size)).await
    }

    /// Reads the next page into the buffer (or ends the stream).
    async fn next_page(&mut self) -> Result<(), Error> {
        let Some(key) = self.key else {
            let (page, size) = Self::read(&self.fetch, &self.cap, self.offset).await?;
            self.done = page.len() < size as usize;
            self.offset += page.len() as u64;
            let (id, seen) = (self.id, &mut self.seen);
            self.buffer
                .extend(page.into_iter().filter(|item| seen.insert(id(item))));
            return Ok(());
        };
        loop {
            let (page, size) = Self::read(&self.fetch, &self.cap, self.offset).await?;
            let fresh = |item: &T| match &self.last {
                None => true,
                Some((last, ids)) => {
                    key(item) > *last || (key(item) == *last && !ids.contains(&(self.id)(item)))
                }
            };
            // Anchored: the page starts at the list's start, or at an item already yielded,
            // so nothing lies between what was yielded and this page.
            let anchored = self.offset == 0 || page.first().is_some_and(|first| !fresh(first));
            if !anchored {
                // Items before were deleted (or the list shrank): step back a page.
                self.offset = self.offset.saturating_sub(u64::from(size - 1));
                continue;
            }
            let full = page.len() >= size as usize;
            let read = page.len() as u64;
            let new: Vec<T> = page.into_iter().filter(|item| fresh(item)).collect();
            for item in &new {
                let k = key(item);
                match &mut self.last {
                    Some((last, ids)) if *last == k => {
                        ids.insert((self.id)(item));
                    }
                    last => *last = Some((k, HashSet::from([(self.id)(item)]))),
                }
            }
            self.buffer.extend(new);
            if !full {
                self.done = true;
            } else {
                // The last item read (yielded, or already seen) anchors the next page.
                self.offset += read - 1;
            }
            return Ok(());
        }
    }
}

/// `fetch(size)`, asked again within the server's page cap when it refuses `size` with a 422
/// naming a lower cap of at least `floor`; the cap is remembered in `cap` (the client's, shared
/// by its clones), so later requests ask within it at once. The answer, and the size it was
/// asked with.
pub(crate) async fn within_server_cap<T, Fut>(
    cap: &AtomicU32,
    mut size: u32,
    floor: u32,
    fetch: impl Fn(u32) -> Fut,
) -> Result<(T, u32), Error>
where
    Fut: Future<Output = Result<T, Error>>,
{
    loop {
        match fetch(size).await {
            Ok(answer) => return Ok((answer, size)),
            Err(e) => match server_page_cap(&e) {
                Some(lower) if lower < size && lower >= floor => {
                    tracing::debug!(cap = lower, "the server caps pages lower; asking again");
                    cap.store(lower, Ordering::Relaxed);
                    size = lower;
                }
                _ => return Err(e),
            },
        }
    }
}

/// The page cap a 422 names: Prefect answers `Invalid limit: must be less than or equal to N`
/// for a limit above `PREFECT_SERVER_API_DEFAULT_LIMIT`.
fn server_page_cap(error: &Error) -> Option<u32> {
    let Error::Validation { error, fields } = error else {
        return None;
    };
    std::iter::once(error.detail.as_str())
        .chain(fields.iter().map(|f| f.msg.as_str()))
        .find_map(|text| {
            let (_, rest) = text.split_once("less than or equal to ")?;
            rest.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::sync::Mutex;

    /// A list the server orders by id, descending, with `churn` run before every page is read.
    struct Churning {
        items: Mutex<Vec<Uuid>>,
        pages: Mutex<u32>,
    }

    impl Churning {
        fn new(n: usize) -> Arc<Churning> {
            Arc::new(Churning {
                items: Mutex::new((0..n).map(|_| Uuid::new_v4()).collect()),
                pages: Mutex::new(0),
            })
        }

        fn page(&self, offset: u64, limit: u32, churn: &dyn Fn(&mut Vec<Uuid>, u32)) -> Vec<Uuid> {
            let mut pages = self.pages.lock().unwrap();
            *pages += 1;
            let mut items = self.items.lock().unwrap();
            churn(&mut items, *pages);
            items.sort_by(|a, b| b.cmp(a));
            items
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .copied()
                .collect()
        }
    }

    async fn stream_all(
        list: Arc<Churning>,
        cap: u32,
        keyed: bool,
        churn: fn(&mut Vec<Uuid>, u32),
    ) -> Vec<Uuid> {
        let fetch = move |offset, limit| {
            let page = list.page(offset, limit, &churn);
            async move { Ok::<_, Error>(page) }
        };
        let key: Option<fn(&Uuid) -> Key> = if keyed { Some(|id| id_desc(*id)) } else { None };
        Pages::new(Arc::new(AtomicU32::new(cap)), fetch, |id: &Uuid| *id, key)
            .into_stream()
            .map(Result::unwrap)
            .collect()
            .await
    }

    /// Deletes one item at the front and creates two, before every page after the first.
    fn churn(items: &mut Vec<Uuid>, page: u32) {
        if page > 1 {
            items.sort_by(|a, b| b.cmp(a));
            items.remove(0);
            items.push(Uuid::new_v4());
            items.push(Uuid::new_v4());
        }
    }

    #[tokio::test]
    async fn every_item_that_exists_throughout_is_streamed_once_while_the_list_changes() {
        for round in 0..20 {
            let list = Churning::new(251);
            let before: HashSet<Uuid> = list.items.lock().unwrap().iter().copied().collect();
            let got = stream_all(list.clone(), 10, true, churn).await;
            let after: HashSet<Uuid> = list.items.lock().unwrap().iter().copied().collect();
            let unique: HashSet<Uuid> = got.iter().copied().collect();
            assert_eq!(unique.len(), got.len(), "round {round}: an item came twice");
            for id in before.intersection(&after) {
                assert!(
                    unique.contains(id),
                    "round {round}: {id} existed throughout and was skipped"
                );
            }
        }
    }

    #[tokio::test]
    async fn offsets_alone_skip_and_repeat_under_the_same_changes() {
        // What the keyed stream is for: plain offsets over the same changes lose items.
        let mut lost = 0;
        for _ in 0..20 {
            let list = Churning::new(251);
            let before: HashSet<Uuid> = list.items.lock().unwrap().iter().copied().collect();
            let got: HashSet<Uuid> = stream_all(list.clone(), 10, false, churn)
                .await
                .into_iter()
                .collect();
            let after: HashSet<Uuid> = list.items.lock().unwrap().iter().copied().collect();
            lost += before.intersection(&after).filter(|id| !got.contains(id)).count();
        }
        assert!(lost > 0, "the churn should make offsets skip items");
    }

    #[tokio::test]
    async fn a_quiet_list_is_streamed_whole_in_order() {
        let list = Churning::new(57);
        let mut expected: Vec<Uuid> = list.items.lock().unwrap().clone();
        expected.sort_by(|a, b| b.cmp(a));
        assert_eq!(stream_all(list, 10, true, |_, _| {}).await, expected);
        let empty = Churning::new(0);
        assert!(stream_all(empty, 10, true, |_, _| {}).await.is_empty());
    }

    #[tokio::test]
    async fn a_list_that_shrinks_below_the_offset_steps_back() {
        // Before the third page, half the list goes.
        let list = Churning::new(60);
        let got = stream_all(list.clone(), 10, true, |items, page| {
            if page == 3 {
                items.sort_by(|a, b| b.cmp(a));
                items.truncate(30);
            }
        })
        .await;
        let after: HashSet<Uuid> = list.items.lock().unwrap().iter().copied().collect();
        let unique: HashSet<Uuid> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len());
        assert!(after.is_subset(&unique));
    }

    #[tokio::test]
    async fn a_server_cap_named_in_a_422_lowers_the_page_size() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let fetch = move |offset: u64, limit: u32| {
            seen.lock().unwrap().push(limit);
            async move {
                if limit > 50 {
                    return Err(crate::response::from_status(
                        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
                        "/api/flows/filter".into(),
                        None,
                        br#"{"detail":"Invalid limit: must be less than or equal to 50."}"#,
                    ));
                }
                Ok((offset..(offset + u64::from(limit)).min(120)).collect::<Vec<u64>>())
            }
        };
        let cap = Arc::new(AtomicU32::new(PAGE_SIZE));
        let items: Vec<u64> = Pages::new(
            cap.clone(),
            fetch,
            |n: &u64| Uuid::from_u128(u128::from(*n)),
            None,
        )
        .into_stream()
        .map(Result::unwrap)
        .collect()
        .await;
        assert_eq!(items, (0..120).collect::<Vec<_>>());
        assert_eq!(cap.load(Ordering::Relaxed), 50, "remembered for the client");
        assert_eq!(asked.lock().unwrap().first(), Some(&PAGE_SIZE));
    }

    #[tokio::test]
    async fn a_server_cap_below_two_ends_the_stream_with_the_servers_refusal() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let fetch = move |_offset: u64, limit: u32| {
            seen.lock().unwrap().push(limit);
            async move {
                Err::<Vec<u64>, _>(crate::response::from_status(
                    reqwest::StatusCode::UNPROCESSABLE_ENTITY,
                    "/api/flows/filter".into(),
                    None,
                    br#"{"detail":"Invalid limit: must be less than or equal to 1."}"#,
                ))
            }
        };
        let cap = Arc::new(AtomicU32::new(PAGE_SIZE));
        let items: Vec<Result<u64, Error>> =
            Pages::new(cap, fetch, |n: &u64| Uuid::from_u128(u128::from(*n)), None)
                .into_stream()
                .collect()
                .await;
        assert_eq!(items.len(), 1, "one error, then the end");
        let error = items.into_iter().next().unwrap().unwrap_err();
        assert_eq!(error.status().map(|s| s.as_u16()), Some(422), "{error}");
        assert_eq!(asked.lock().unwrap().len(), 1, "not asked again for ever");
    }

    #[tokio::test]
    async fn a_request_of_its_own_size_is_asked_again_within_the_cap_and_the_cap_remembered() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let cap = AtomicU32::new(PAGE_SIZE);
        let (answer, size) = within_server_cap(&cap, 50, 1, |size| {
            asked.lock().unwrap().push(size);
            async move {
                if size > 20 {
                    return Err(crate::response::from_status(
                        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
                        "/api/work_pools/p/get_scheduled_flow_runs".into(),
                        None,
                        br#"{"detail":"Invalid limit: must be less than or equal to 20."}"#,
                    ));
                }
                Ok(size * 10)
            }
        })
        .await
        .unwrap();
        assert_eq!((answer, size), (200, 20));
        assert_eq!(*asked.lock().unwrap(), vec![50, 20]);
        assert_eq!(
            cap.load(Ordering::Relaxed),
            20,
            "later requests ask within it at once"
        );
    }

    #[test]
    fn the_cap_is_read_from_prefects_message() {
        let error = crate::response::from_status(
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "/api/x".into(),
            None,
            br#"{"detail":"Invalid limit: must be less than or equal to 50."}"#,
        );
        assert_eq!(server_page_cap(&error), Some(50));
        let other = crate::response::from_status(
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "/api/x".into(),
            None,
            br#"{"detail":"something else"}"#,
        );
        assert_eq!(server_page_cap(&other), None);
    }

    #[tokio::test]
    async fn a_page_of_no_items_is_refused_before_sending() {
        // Port 9 (discard) is never asked: the check comes first.
        let client = Client::new("http://127.0.0.1:9/api").unwrap();
        for limit in [0, -1] {
            let filter = crate::query::FlowQuery {
                limit: Some(limit),
                ..Default::default()
            };
            let err = page(&client, &filter).await.unwrap_err();
            assert!(err.is_client_side(), "{limit}: {err:?}");
        }
    }
}
