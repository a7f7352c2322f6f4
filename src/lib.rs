//! Typed async client for the Prefect REST API.
//!
//! - [`Client`]: built from Prefect's own settings, read as Prefect reads them
//!   ([`Client::from_env`]: the environment, `.env`, `prefect.toml`, `pyproject.toml`, the active
//!   profile) or explicitly ([`Client::builder`], with a [`RetryPolicy`]).
//! - One handle per resource, all with the same verbs: [`Client::flows`],
//!   [`Client::deployments`], [`Client::flow_runs`], [`Client::task_runs`],
//!   [`Client::variables`], [`Client::logs`], [`Client::artifacts`], [`Client::events`],
//!   [`Client::work_pools`], [`Client::concurrency_limits`],
//!   [`Client::global_concurrency_limits`]. List bodies are named in [`query`].
//! - Slot guards, the Rust form of Prefect's `concurrency()`: [`Client::concurrency`] (see
//!   [`concurrency`] and the vocabulary in [`lease`]).
//! - Rust work as Prefect flow and task runs: [`Client::new_flow_run`] (see [`runs`]).
//! - Prefect runs Rust code: deployments served by this process ([`Client::serve`]), a worker
//!   ([`Client::worker`]), runs handed over by Prefect's own workers (see [`serve`]).
//! - Live events and logs over Prefect's websockets: [`streaming`].
//! - Every operation of the API, generated: [`Client::raw`] and [`types`].
//! - One [`Error`] with typed variants and `is_*` helpers; messages say what to do.
//!
//! | Verb | What it does |
//! | --- | --- |
//! | `create(…)` | creates |
//! | `get(id)` / `get_by_name(name)` | one object, or [`Error::NotFound`] |
//! | [`.optional()`](OptionalExt::optional) | on any result: `None` for a missing object |
//! | `list_page(&query)` | one page (the query's `limit` and `offset`) |
//! | `stream(query)` | every item, paged as consumed |
//! | `update(id)` / `update_by_name(name)` | the changes |
//! | `delete(id)` / `delete_by_name(name)` | deletes, or [`Error::NotFound`] |
//!
//! A call with options is a builder; every builder is awaited directly (or with `.send()`,
//! the same call).
//!
//! ```no_run
//! # async fn demo() -> Result<(), prefect_client::Error> {
//! use prefect_client::{Client, OptionalExt};
//!
//! let client = Client::from_env()?;
//! client.global_concurrency_limits().create("database", 5).await?;
//! let rows = client.concurrency(["database"]).run(async { 42 }).await?;
//! let flow = client.flows().get_by_name("etl").await.optional()?;
//! # Ok(()) }
//! ```
//!
//! The README covers configuration, errors and each area; [`server_operations`] how to run
//! Prefect for slot guards and events (lease storage, several replicas, a dying replica).
#![forbid(unsafe_code)]

mod client;
pub mod concurrency;
pub mod config;
mod csrf;
mod detached;
pub mod error;
pub mod generated;
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
/// The request and response types of every operation, generated from Prefect's schema.
pub use generated::types;
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

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
