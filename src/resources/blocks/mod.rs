//! Blocks: Prefect's typed, named configuration (credentials, webhooks, file systems, your own
//! types), as Python's `Block` classes save and load them.

mod checksum;

pub use checksum::schema_checksum;
