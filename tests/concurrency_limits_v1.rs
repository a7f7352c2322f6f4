//! Tag concurrency limits (v1) against a real Prefect server.

mod common;

use common::{client, unique};
use futures_util::TryStreamExt;
use prefect_client::Error;

#[tokio::test]
async fn create_answers_201_and_returns_the_limit() {
    let client = client().await;
    let tag = unique("create");
    let created = client.concurrency_limits().create(&tag, 3).await.unwrap();
    assert_eq!(created.tag, tag);
    assert_eq!(created.concurrency_limit, 3);
    assert!(created.active_slots.is_empty());
}

#[tokio::test]
async fn read_by_tag_and_by_id_return_the_same_limit() {
    let client = client().await;
    let limits = client.concurrency_limits();
    let tag = unique("read");
    let created = limits.create(&tag, 4).await.unwrap();
    let by_tag = limits.get_by_tag(&tag).await.unwrap();
    let by_id = limits.get(created.id).await.unwrap();
    assert_eq!(by_tag.id, created.id);
    assert_eq!(by_id.tag, tag);
    assert_eq!(by_id.concurrency_limit, 4);
}

#[tokio::test]
async fn create_upserts_an_existing_tag() {
    let client = client().await;
    let limits = client.concurrency_limits();
    let tag = unique("upsert");
    let first = limits.create(&tag, 1).await.unwrap();
    let second = limits.create(&tag, 7).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(limits.get_by_tag(&tag).await.unwrap().concurrency_limit, 7);
}

#[tokio::test]
async fn list_includes_created_limits_across_pages() {
    let client = client().await;
    let limits = client.concurrency_limits();
    let tags: Vec<String> = (0..3).map(|_| unique("list")).collect();
    for tag in &tags {
        limits.create(tag, 1).await.unwrap();
    }
    let all: Vec<_> = limits.stream(Default::default()).try_collect().await.unwrap();
    for tag in &tags {
        assert!(all.iter().any(|l| &l.tag == tag), "{tag} missing from list");
    }
    let page = limits.list_page(&page_of(2)).await.unwrap();
    assert_eq!(page.len(), 2);
}

#[tokio::test]
async fn delete_by_id_and_by_tag_then_reads_are_not_found() {
    let client = client().await;
    let limits = client.concurrency_limits();
    let (a, b) = (unique("del-a"), unique("del-b"));
    let la = limits.create(&a, 1).await.unwrap();
    limits.create(&b, 1).await.unwrap();
    limits.delete(la.id).await.unwrap();
    limits.delete_by_tag(&b).await.unwrap();
    let err = limits.get(la.id).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = limits.get_by_tag(&b).await.unwrap_err();
    let Error::NotFound(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.status.as_u16(), 404);
    assert_eq!(api.detail, "Concurrency limit not found");
    assert!(
        api.path.ends_with(&format!("/concurrency_limits/tag/{b}")),
        "{}",
        api.path
    );
    assert!(err.to_string().contains("check the id or name"), "{err}");
    assert!(limits.delete_by_tag(&b).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn increment_decrement_and_reset_move_active_slots() {
    let client = client().await;
    let limits = client.concurrency_limits();
    let tag = unique("slots");
    let limit = limits.create(&tag, 1).await.unwrap();
    let (run_a, run_b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let applied = limits.increment(&[&tag], run_a).await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(limits.get(limit.id).await.unwrap().active_slots, [run_a]);
    let err = limits.increment(&[&tag], run_b).await.unwrap_err();
    assert!(err.is_slots_unavailable(), "{err:?}");
    limits.decrement(&[&tag], run_a).await.unwrap();
    assert!(limits.get(limit.id).await.unwrap().active_slots.is_empty());
    limits.increment(&[&tag], run_b).await.unwrap();
    assert_eq!(limits.get(limit.id).await.unwrap().active_slots, [run_b]);
    limits.reset_by_tag(&tag).await.unwrap();
    assert!(limits.get(limit.id).await.unwrap().active_slots.is_empty());
}

#[tokio::test]
async fn server_422_becomes_validation_error_with_field_location() {
    let client = client().await;
    // The wrapper refuses a short lease itself, so send it through the generated client.
    let body: prefect_client::types::BulkIncrementActiveSlotsWithLeaseBody = serde_json::from_value(
        serde_json::json!({ "names": [unique("v")], "slots": 1, "mode": "concurrency", "lease_duration": 5.0 }),
    )
    .unwrap();
    let raw = client
        .raw()
        .bulk_increment_active_slots_with_lease(&body)
        .await
        .unwrap_err();
    let err = Error::from_generated(raw).await;
    let Error::Validation { error, fields } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(error.status.as_u16(), 422);
    assert_eq!(fields[0].loc, ["body", "lease_duration"]);
    assert!(
        fields[0].msg.contains("greater than or equal to 60"),
        "{}",
        fields[0].msg
    );
    assert!(err.to_string().contains("body.lease_duration"), "{err}");
}

/// A one-page request for `limit` limits.
fn page_of(limit: i64) -> prefect_client::types::ReadConcurrencyLimitsBody {
    prefect_client::types::ReadConcurrencyLimitsBody {
        limit: Some(limit),
        offset: 0,
    }
}
