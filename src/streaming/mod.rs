//! Prefect's websockets: live events and logs as [`Subscription`] streams, and the
//! [`EventEmitter`] for high volumes of events. None of these routes is in `openapi.yaml`.
//!
//! - `socket`: opening an authenticated websocket through the client's HTTP settings.
//! - [`subscription`]: reconnecting, resuming and dropping repeats.
//! - [`emitter`]: events sent over `/events/in`, checkpointed and resent after a reconnect.
//! - `lasting`: a subscription opened again whenever it ends (a run's watch, serving's wake-ups).
//!
//! ```no_run
//! # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
//! use futures_util::StreamExt;
//! use prefect_client::types::EventFilter;
//!
//! let mut events = client.events().subscribe(EventFilter::default()).await?;
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {} {}", event.occurred, event.event, event.resource.0["prefect.resource.id"]);
//! }
//! # Ok(()) }
//! ```

pub mod emitter;
pub(crate) mod lasting;
pub(crate) mod socket;
pub mod subscription;

pub use emitter::{EmitFailure, EmitReport, EventEmitter};
pub use subscription::{Subscribe, Subscription};
