#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod client;
pub mod concurrency;
pub mod config;
mod csrf;
mod detached;
pub mod error;
mod generated;
mod http_client;
pub mod lease;
pub mod query;
pub mod resources;
mod response;
mod retry;
pub mod runs;
pub mod serve;
pub mod streaming;
mod transport;
mod waits;

pub use client::{Client, ClientBuilder};
pub use config::{Config, ConfigError};
pub use error::{ApiError, Error, FieldError, TlsProblem};
/// The generated client: every operation of Prefect's REST API as a typed async method named
/// after the server's route (`create_concurrency_limit`, `read_flow_run`, …), produced by
/// `build.rs` from `openapi.yaml`; reach it through [`Client::raw`]. Its errors become typed
/// with [`Error::from_generated`].
pub use generated::Client as RawClient;
/// The request and response types of every operation, generated from Prefect's schema.
pub use generated::types;
/// What a [`RawClient`] call answers ([`RawResponse`]) and how it fails ([`RawError`], typed by
/// [`Error::from_generated`]).
pub use generated::{Error as RawError, ResponseValue as RawResponse};
/// The HTTP client crate the SDK uses, for [`ClientBuilder::http_client`].
pub use reqwest;
pub use retry::RetryPolicy;
/// The Prefect release the SDK is generated from (its `openapi.yaml`) and tested against.
pub const PREFECT_VERSION: &str = "3.8.8";

pub use error::OptionalExt;
pub use http_client::install_tls_provider;
pub use transport::PREFECT_API_VERSION;

/// Running Prefect for this SDK: lease storage, several server replicas behind a load balancer,
/// and what the SDK does when a replica dies (`docs/operations.md`).
#[doc = include_str!("../docs/operations.md")]
pub mod server_operations {}

/// The guides of `docs/`, whose examples are compiled (and run, where they can) as doctests,
/// as the README's are as the crate's documentation.
#[cfg(doctest)]
pub mod guides {
    #[doc = include_str!("../docs/configuration.md")]
    pub struct Configuration;
    #[doc = include_str!("../docs/concurrency.md")]
    pub struct Concurrency;
    #[doc = include_str!("../docs/events.md")]
    pub struct Events;
    #[doc = include_str!("../docs/runs-and-serving.md")]
    pub struct RunsAndServing;
    #[doc = include_str!("../docs/testing.md")]
    pub struct Testing;
    #[doc = include_str!("../docs/upgrading.md")]
    pub struct Upgrading;
}
