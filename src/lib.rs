#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
pub mod concurrency;
pub mod config;
mod csrf;
pub mod error;
pub mod generated;
pub mod resources;
mod transport;

pub use client::{Client, ClientBuilder};
pub use config::Config;
pub use error::{ApiError, Error, FieldError};
/// The request and response types of every operation, generated from Prefect's schema.
pub use generated::types;
/// The HTTP client crate the SDK uses, for [`ClientBuilder::http_client`].
pub use reqwest;
/// The Prefect release the SDK is generated from (its `openapi.yaml`) and tested against.
pub const PREFECT_VERSION: &str = "3.8.8";

pub use transport::{MAX_RETRY_AFTER, PREFECT_API_VERSION, install_tls_provider, is_repeatable};
