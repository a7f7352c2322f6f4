//! Blocks: Prefect's typed, named configuration (credentials, webhooks, file systems, your own
//! types), as Python's `Block` classes save and load them.
//!
//! [`BlockTypes`], [`BlockSchemas`] and [`BlockDocuments`] are the server's operations on
//! each, with the verbs of every handle.
//!
//! Secrets stay secret: [`SecretStr`] and [`SecretValue`] fields show as `[REDACTED]` in
//! `Debug`, a [`BlockDocument`] shows its secret fields as `********`, errors name a field
//! without showing a secret, and every read says whether it returns secrets ([`Secrets`]).

mod block_types;
mod checksum;
mod documents;
mod schemas;
mod secret;
mod validate;

pub use block_types::{BlockTypes, CreateBlockType, UpdateBlockType};
pub use checksum::schema_checksum;
pub use documents::{BlockDocument, BlockDocuments, Secrets, UpdateBlockDocument};
pub use schemas::{BlockSchemas, CreateBlockSchema};
pub use secret::{SecretStr, SecretValue};

use crate::Client;

/// Blocks; from [`Client::blocks`]. See the [module documentation](self).
#[derive(Clone, Copy, Debug)]
pub struct Blocks<'a> {
    client: &'a Client,
}

impl<'a> Blocks<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Blocks { client }
    }

    /// Block types.
    pub fn types(&self) -> BlockTypes<'a> {
        BlockTypes::new(self.client)
    }

    /// Block schemas.
    pub fn schemas(&self) -> BlockSchemas<'a> {
        BlockSchemas::new(self.client)
    }

    /// Block documents.
    pub fn documents(&self) -> BlockDocuments<'a> {
        BlockDocuments::new(self.client)
    }
}
