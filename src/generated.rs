//! The generated layer: every operation of Prefect's REST API as a typed async method on
//! `Client` (public as [`crate::RawClient`]), with request and response types in `types`
//! (public as [`crate::types`]).
//!
//! Produced by `build.rs` from `openapi.yaml` with progenitor at build time; never edited by
//! hand. Method names are the Prefect server's route names (`create_concurrency_limit`,
//! `read_flow_run`, …). Reach it through [`crate::Client::raw`]. Every 2xx answer decodes as the
//! documented type; any other status comes back as
//! [`Error::UnexpectedResponse`](progenitor_client::Error::UnexpectedResponse), which
//! [`crate::Error::from_generated`] turns into a typed [`crate::Error`].

#![allow(
    missing_docs,
    dead_code,
    unused_imports,
    clippy::all,
    clippy::pedantic,
    rustdoc::all,
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]

include!(concat!(env!("OUT_DIR"), "/prefect_api.rs"));
