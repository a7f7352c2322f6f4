//! Block schemas: the fields of a block type's documents, one per version of a type's fields,
//! found by id or by checksum.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::block_types::{BlockTypes, check_path_slug};
use crate::query::{BlockSchemaFilter, BlockSchemaFilterBlockTypeId, BlockSchemaQuery};
use crate::resources::{InvalidField, call, json_object, list_verbs, send_on_await};
use crate::types::{BlockSchema, BlockSchemaCreate};
use crate::{ApiError, Client, Error};

/// Block schemas; from [`Blocks::schemas`](super::Blocks::schemas).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let schema = client.blocks().schemas().get_latest("webhook").await?;
/// println!("{} {:?}", schema.checksum, schema.fields["secret_fields"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BlockSchemas<'a> {
    client: &'a Client,
}

impl<'a> BlockSchemas<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        BlockSchemas { client }
    }

    /// A new schema of the block type `block_type_id` with these `fields` (a JSON Schema of
    /// the documents' data, as [`schema_fields`](super::schema_fields) makes one); set its
    /// options, then await it (or [`send`](CreateBlockSchema::send) it). The server answers
    /// with the schema it has when one has the same checksum and version. To make a Rust type
    /// a block type, prefer [`Blocks::register`](super::Blocks::register).
    pub fn create(&self, block_type_id: Uuid, fields: &impl Serialize) -> CreateBlockSchema {
        CreateBlockSchema {
            client: self.client.clone(),
            block_type_id,
            fields: json_object("block schema fields", fields),
            capabilities: Vec::new(),
            version: None,
        }
    }

    /// The block schema with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no block schema has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<BlockSchema, Error> {
        call!(self.client, read_block_schema_by_id(&id))
    }

    /// The newest block schema with this checksum (`sha256:…`, see
    /// [`schema_checksum`](super::schema_checksum)).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty checksum or one with `/` (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_by_checksum(&self, checksum: &str) -> Result<BlockSchema, Error> {
        if checksum.is_empty() || checksum.contains('/') {
            return Err(Error::invalid(
                "block schema checksum",
                format!("{checksum:?}; give a checksum as Prefect writes it, `sha256:` and 64 hex digits"),
            ));
        }
        call!(self.client, read_block_schema_by_checksum(checksum, None))
    }

    /// The newest schema of the block type with this slug: the one Prefect's UI and Python's
    /// blocks of the installed release write documents with.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad slug (nothing sent); [`Error::NotFound`] when there is
    /// no such type or it has no schema; any other error of the requests.
    pub async fn get_latest(&self, block_type_slug: &str) -> Result<BlockSchema, Error> {
        check_path_slug(block_type_slug)?;
        let block_type = BlockTypes::new(self.client).get_by_slug(block_type_slug).await?;
        self.newest_of_type_id(block_type.id, block_type_slug).await
    }

    /// The newest schema of the block type with this id (the server lists newest first).
    pub(super) async fn newest_of_type_id(
        &self,
        block_type_id: Uuid,
        slug: &str,
    ) -> Result<BlockSchema, Error> {
        let query = BlockSchemaQuery {
            block_schemas: Some(BlockSchemaFilter {
                block_type_id: Some(BlockSchemaFilterBlockTypeId {
                    any: Some(vec![block_type_id]),
                }),
                ..Default::default()
            }),
            limit: Some(1),
            offset: 0,
        };
        self.list_page(&query).await?.into_iter().next().ok_or_else(|| {
            not_found(
                "/block_schemas/filter",
                format!("the block type `{slug}` has no block schema; register one (Blocks::register) first"),
            )
        })
    }

    /// Deletes the block schema with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no block schema has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_block_schema(&id))
    }

    list_verbs!("block schemas", BlockSchemaQuery => BlockSchema);
}

/// A block schema to create; from [`BlockSchemas::create`].
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to create the block schema"]
pub struct CreateBlockSchema {
    client: Client,
    block_type_id: Uuid,
    fields: Result<Map<String, Value>, InvalidField>,
    capabilities: Vec<String>,
    version: Option<String>,
}

impl CreateBlockSchema {
    /// What documents of the schema can do (`read-path`, `write-path`, …).
    pub fn capabilities(mut self, capabilities: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.capabilities = capabilities.into_iter().map(|c| c.as_ref().to_string()).collect();
        self
    }

    /// The schema's version (default `non-versioned`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.to_string());
        self
    }

    /// Creates the block schema (or answers with the one that has its checksum and version).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the fields are not a JSON object (nothing sent);
    /// [`Error::NotFound`] for no such block type (and for a nested block type missing);
    /// any other error of the request.
    pub async fn send(self) -> Result<BlockSchema, Error> {
        let body = BlockSchemaCreate {
            block_type_id: self.block_type_id,
            capabilities: self.capabilities,
            fields: self.fields?,
            version: self.version.unwrap_or_else(|| "non-versioned".into()),
        };
        call!(self.client, create_block_schema(&body))
    }
}

send_on_await! {
    CreateBlockSchema => BlockSchema;
}

/// An error of a missing object that is no server answer of its own (an empty list).
fn not_found(path: &str, detail: String) -> Error {
    Error::NotFound(ApiError {
        status: reqwest::StatusCode::NOT_FOUND,
        path: path.to_string(),
        detail,
    })
}
