//! A [tower](https://docs.rs/tower) layer that holds slots of global concurrency limits around
//! each call of the service it wraps (feature `tower`, on by default).
//!
//! ```no_run
//! # async fn demo(client: prefect_client::Client) -> Result<(), tower::BoxError> {
//! use prefect_client::concurrency::ConcurrencyLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // At most as many calls at once, across every process, as the "reports" limit allows.
//! let service = ServiceBuilder::new()
//!     .layer(ConcurrencyLayer::new(client.concurrency(["reports"])))
//!     .service(service_fn(|name: String| async move {
//!         Ok::<_, std::convert::Infallible>(format!("report for {name}"))
//!     }));
//! let report = service.oneshot("ingest".to_string()).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Acquire;

/// The error of a [`ConcurrencyService`]: the inner service's error, or the SDK's
/// [`Error`](crate::Error) (slots not acquired, lease lost); downcast to tell them apart.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps services in a [`ConcurrencyService`] that holds slots around each call.
#[derive(Clone)]
pub struct ConcurrencyLayer {
    acquire: Acquire,
}

impl ConcurrencyLayer {
    /// Each call holds the slots `acquire` describes (names, slots, timeout, strictness) from
    /// before the inner call until its response future completes or is dropped.
    pub fn new(acquire: Acquire) -> ConcurrencyLayer {
        ConcurrencyLayer { acquire }
    }
}

impl fmt::Debug for ConcurrencyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLayer")
            .field("acquire", &self.acquire)
            .finish()
    }
}

impl<S> tower_layer::Layer<S> for ConcurrencyLayer {
    type Service = ConcurrencyService<S>;

    fn layer(&self, inner: S) -> ConcurrencyService<S> {
        ConcurrencyService {
            inner,
            acquire: self.acquire.clone(),
        }
    }
}

/// A service whose calls each hold slots of global concurrency limits; from
/// [`ConcurrencyLayer`].
///
/// A call first waits for the slots, then calls the inner service, and releases when the
/// inner response future completes (or when the call's future is dropped). If the lease is lost
/// while the inner call runs, that call is dropped and fails with
/// [`Error::LeaseLost`](crate::Error::LeaseLost).
#[derive(Clone, Debug)]
pub struct ConcurrencyService<S> {
    inner: S,
    acquire: Acquire,
}

impl<S, Request> tower_service::Service<Request> for ConcurrencyService<S>
where
    S: tower_service::Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    Request: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The inner service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let acquire = self.acquire.clone();
        Box::pin(async move {
            match acquire.hold(async move { inner.call(request).await }).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(error)) => Err(error.into()),
                Err(error) => Err(Box::new(error) as BoxError),
            }
        })
    }
}
