//! The tower layer against a real Prefect server: calls through a service limited to 2 never
//! hold more than 2 slots, none are left after, and a missing limit fails the call.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PeakPoller, active_slots, client, new_global_limit, unique};
use prefect_client::Error;
use prefect_client::concurrency::ConcurrencyLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test]
async fn calls_through_the_layer_hold_at_most_the_limit_and_leave_nothing() {
    let client = client().await;
    let name = new_global_limit(&client, "tower", 2).await;
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(ConcurrencyLayer::new(client.concurrency([name.as_str()])))
        .service(service_fn({
            let (running, most) = (running.clone(), most.clone());
            move |n: u32| {
                let (running, most) = (running.clone(), most.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, std::convert::Infallible>(n * 2)
                }
            }
        }));
    let poller = PeakPoller::start(&client, &name, Duration::from_millis(20));
    let calls: Vec<_> = (0..32u32)
        .map(|n| tokio::spawn(service.clone().oneshot(n)))
        .collect();
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), n as u32 * 2);
    }
    let peak = poller.stop().await;
    assert!(peak <= 2, "the server counted {peak} slots");
    assert!(most.load(Ordering::SeqCst) <= 2, "inner calls ran together");
    assert_eq!(active_slots(&client, &name).await, 0);

    // A call dropped while it waits or runs gives its slot back.
    let slow = ServiceBuilder::new()
        .layer(ConcurrencyLayer::new(client.concurrency([name.as_str()])))
        .service(service_fn(|_: ()| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::convert::Infallible>(())
        }));
    let _ = tokio::time::timeout(Duration::from_millis(500), slow.oneshot(())).await;
    assert_eq!(
        common::wait_until_slots(&client, &name, 0, Duration::from_secs(5)).await,
        0
    );
}

#[tokio::test]
async fn a_missing_limit_fails_the_call_with_missing_limits() {
    let client = client().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(ConcurrencyLayer::new(
            client.concurrency([unique("no-such-limit")]),
        ))
        .service(service_fn({
            let calls = calls.clone();
            move |_: ()| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::convert::Infallible>(()) }
            }
        }));
    let err = service.oneshot(()).await.unwrap_err();
    let err = err.downcast::<Error>().expect("the SDK's error");
    assert!(err.is_missing_limits(), "{err:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the inner service was not called"
    );
}
