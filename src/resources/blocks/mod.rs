//! Blocks: Prefect's typed, named configuration (credentials, webhooks, file systems, your own
//! types), as Python's `Block` classes save and load them.
//!
//! - [`Blocks::save`] / [`Blocks::load`] write and read a document as a Rust type that
//!   implements [`Block`]; [`Blocks::register`] creates its block type and schema (`save` does
//!   it first, as Python's `save` does).
//! - Prefect's own block types are typed: [`Secret`], [`Webhook`], [`LocalFileSystem`].
//! - [`BlockTypes`], [`BlockSchemas`] and [`BlockDocuments`] are the server's operations on
//!   each, with the verbs of every handle.
//!
//! Secrets stay secret: [`SecretStr`] and [`SecretValue`] fields show as `[REDACTED]` in
//! `Debug`, a [`BlockDocument`] shows its secret fields as `********`, errors name a field
//! without showing a secret, and every read says whether it returns secrets ([`Secrets`]).
//!
//! ```no_run
//! # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
//! use prefect_client::resources::blocks::{Block, SecretStr};
//!
//! #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! struct Warehouse {
//!     host: String,
//!     password: SecretStr,
//! }
//!
//! impl Block for Warehouse {
//!     const TYPE_SLUG: &'static str = "warehouse";
//!     const TYPE_NAME: &'static str = "Warehouse";
//! }
//!
//! let blocks = client.blocks();
//! let saved = blocks
//!     .save("prod", &Warehouse { host: "db.internal".into(), password: SecretStr::new("pw") })
//!     .await?;
//! println!("{} {}", saved.object.id, saved.change); // created, updated or unchanged
//! let warehouse: Warehouse = blocks.load("prod").await?; // Python: Warehouse.load("prod")
//! # Ok(()) }
//! ```

mod block_types;
mod checksum;
mod documents;
mod reference;
mod schemas;
mod secret;
mod system;
mod typed;
mod validate;

pub use block_types::{BlockTypes, CreateBlockType, UpdateBlockType};
pub use checksum::schema_checksum;
pub use documents::{BlockDocument, BlockDocuments, Secrets, UpdateBlockDocument};
pub use reference::BlockRef;
pub use schemas::{BlockSchemas, CreateBlockSchema};
pub use secret::{SecretStr, SecretValue};
pub use system::{LocalFileSystem, Secret, Webhook, WebhookMethod};
pub use typed::{Block, BlockField, BlockRegistration, SchemaOrigin, schema_fields};

use crate::resources::{Applied, Change, call, generated_name, json_object};
use crate::types::{BlockDocumentCreate, BlockDocumentUpdate};
use crate::{Client, Error};
use documents::check_against;
use typed::{Nested, Spec, block_schema_fields};
use validate::Extent;

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

    /// Makes `T` a block type on the server, as Python's `Block.register_type_and_schema`
    /// does: the blocks it holds first, then its block type (created by slug when missing; its
    /// description, logo, documentation and code example updated where `T` sets them and they
    /// differ), then its schema (read by checksum and version, created when missing). For a
    /// type whose schema is the server's ([`SchemaOrigin::Server`]), reads the type and its
    /// newest schema and creates nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `T` cannot be a block type (see [`schema_fields`]; nothing
    /// sent); [`Error::NotFound`] for a server-owned type the server does not have;
    /// [`Error::Forbidden`] when `T`'s slug is a protected type of Prefect's; any other error
    /// of the requests.
    pub async fn register<T: Block>(&self) -> Result<BlockRegistration, Error> {
        typed::register(self.client, Spec::of::<T>()).await
    }

    /// Saves `value` as the document `name` of `T`'s block type: created when there is none,
    /// its data overwritten when it differs (as Python's `save(name, overwrite=True)`), left
    /// alone when the stored data (read with secrets) and schema are what would be sent.
    /// Registers `T` first ([`register`](Self::register)).
    ///
    /// The answer's document has its secret fields obfuscated.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, or a value that is not a JSON object or does not
    /// fit the block schema (naming the field, never showing a secret; nothing written, and
    /// for a schema made from `T`, nothing sent); those of [`register`](Self::register); any
    /// error of the requests.
    pub async fn save<T: Block>(&self, name: &str, value: &T) -> Result<Applied<BlockDocument>, Error> {
        let spec = Spec::of::<T>();
        let document_name: crate::types::BlockDocumentCreateName =
            generated_name("block document name", name)?;
        let data = json_object("block data", value)?;
        if spec.origin == SchemaOrigin::Derived
            && let Ok(fields) = block_schema_fields(&spec, &Nested::new(), 0)
        {
            validate::check_data(&fields, &data, Extent::Whole).map_err(|problem| {
                Error::invalid(
                    "block data",
                    format!("{problem}; the value does not fit its own schema"),
                )
            })?;
        }
        let registration = self.register::<T>().await?;
        let schema = &registration.block_schema;
        check_against(schema, &data, Extent::Whole)?;
        let documents = self.documents();
        let mut conflict = None;
        // A create that loses a race to another saver becomes an update.
        for _ in 0..2 {
            match documents.get_by_name(T::TYPE_SLUG, name, Secrets::Include).await {
                Ok(existing) => {
                    if existing.block_schema_id == schema.id && existing.stored_data() == data {
                        return Ok(Applied::new(existing.obfuscated(), Change::Unchanged));
                    }
                    let body = BlockDocumentUpdate {
                        block_schema_id: Some(schema.id),
                        data,
                        merge_existing_data: false,
                    };
                    call!(self.client, update_block_document_data(&existing.id, &body))?;
                    let updated = documents.get(existing.id, Secrets::Obfuscate).await?;
                    return Ok(Applied::new(updated, Change::Updated));
                }
                Err(e) if e.is_not_found() => {
                    let body = BlockDocumentCreate {
                        block_schema_id: schema.id,
                        block_type_id: registration.block_type.id,
                        data: data.clone(),
                        is_anonymous: false,
                        name: Some(document_name.clone()),
                    };
                    match call!(self.client, create_block_document(&body)) {
                        Ok(created) => {
                            let created = BlockDocument::from_generated(created, Secrets::Obfuscate);
                            return Ok(Applied::new(created, Change::Created));
                        }
                        Err(e) if e.is_conflict() => conflict = Some(e),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(conflict.expect("the loop ends early unless a create met a conflict"))
    }

    /// The document `name` of `T`'s block type, read with its secrets and decoded as `T`
    /// (Python's `T.load(name)`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent), or data that does not fit `T`
    /// (naming the field, never showing a secret); [`Error::NotFound`] when there is no such
    /// document; any other error of the request.
    pub async fn load<T: Block>(&self, name: &str) -> Result<T, Error> {
        let document = self
            .documents()
            .get_by_name(T::TYPE_SLUG, name, Secrets::Include)
            .await?;
        let own_secrets: Vec<String> = schema_fields::<T>()
            .ok()
            .and_then(|fields| fields.get("secret_fields").cloned())
            .and_then(|fields| serde_json::from_value(fields).ok())
            .unwrap_or_default();
        document.decode_with(&own_secrets)
    }
}
