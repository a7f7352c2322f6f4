//! Block documents: named, saved block data, read with or without their secrets.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::block_types::check_path_slug;
use super::secret::{obfuscate, touches_secret};
use super::validate::{Extent, check_data};
use crate::query::BlockDocumentQuery;
use crate::resources::{InvalidField, call, generated_name, json_object, pagination, send_on_await};
use crate::types::{self, BlockDocumentCreate, BlockDocumentUpdate, BlockSchema, BlockType};
use crate::{Client, Error};

/// Whether a read returns the values of a block document's secret fields. Every read says it:
/// secrets are never read unless asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Secrets {
    /// Secret fields as Prefect's server obfuscates them (`********`).
    Obfuscate,
    /// The secret values themselves (still never shown by [`BlockDocument`]'s `Debug`).
    Include,
}

impl Secrets {
    fn included(self) -> bool {
        self == Secrets::Include
    }
}

/// A block document: a block type's data saved under a name. Its data is read with
/// [`data`](Self::data) (secret fields obfuscated), [`expose_data`](Self::expose_data) (as
/// read, with the secrets when read with [`Secrets::Include`]) or
/// [`decode`](Self::decode); `Debug` never shows a secret field's value.
#[derive(Clone)]
#[non_exhaustive]
pub struct BlockDocument {
    /// The document's id.
    pub id: Uuid,
    /// The document's name (anonymous documents have none).
    pub name: Option<String>,
    /// Whether the document is anonymous (made by Prefect for its own use, not shown in the UI).
    pub is_anonymous: bool,
    /// The id of its block type.
    pub block_type_id: Uuid,
    /// Its block type, when the server sends it (it does for single reads and lists).
    pub block_type: Option<BlockType>,
    /// The id of the block schema its data was saved with.
    pub block_schema_id: Uuid,
    /// That block schema, when the server sends it (its `secret_fields` say what is secret).
    pub block_schema: Option<BlockSchema>,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
    /// When it was last changed.
    pub updated: Option<DateTime<Utc>>,
    data: Map<String, Value>,
    references: BTreeMap<String, Uuid>,
    secrets: Secrets,
}

impl BlockDocument {
    pub(super) fn from_generated(document: types::BlockDocument, secrets: Secrets) -> BlockDocument {
        // Each nested block saved as a document of its own: `{field: {"block_document": {"id": …}}}`.
        let references = document
            .block_document_references
            .iter()
            .filter_map(|(field, reference)| {
                let id = reference
                    .get("block_document")?
                    .get("id")?
                    .as_str()?
                    .parse()
                    .ok()?;
                Some((field.clone(), id))
            })
            .collect();
        BlockDocument {
            id: document.id,
            name: document.name.map(String::from),
            is_anonymous: document.is_anonymous,
            block_type_id: document.block_type_id,
            block_type: document.block_type,
            block_schema_id: document.block_schema_id,
            block_schema: document.block_schema,
            created: document.created,
            updated: document.updated,
            data: document.data,
            references,
            secrets,
        }
    }

    /// The slug of its block type, when the server sent the type.
    pub fn block_type_slug(&self) -> Option<&str> {
        self.block_type.as_ref().map(|t| t.slug.as_str())
    }

    /// Its secret fields as its block schema lists them (`url`, `headers.*`, `inner.token`).
    pub fn secret_fields(&self) -> Vec<String> {
        let listed = self
            .block_schema
            .as_ref()
            .and_then(|s| s.fields.get("secret_fields"));
        let mut fields: Vec<String> = listed
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        fields.dedup();
        fields
    }

    /// Whether it was read with [`Secrets::Include`].
    pub fn secrets(&self) -> Secrets {
        self.secrets
    }

    /// Its data with every secret field obfuscated (`********`), as Prefect's UI shows it;
    /// when the server sent no schema, every field of a document read with secrets is.
    pub fn data(&self) -> Map<String, Value> {
        let mut data = self.data.clone();
        match &self.block_schema {
            Some(_) => obfuscate(&mut data, &self.secret_fields()),
            None if self.secrets.included() => obfuscate(&mut data, &["*".to_string()]),
            None => {}
        }
        data
    }

    /// Its data as read: with the secret values when read with [`Secrets::Include`]. A nested
    /// block saved as a document of its own is there with its data (see
    /// [`references`](Self::references) for its id).
    pub fn expose_data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// The fields holding another block document, and that document's id (Prefect stores them
    /// as `{"$ref": {"block_document_id": …}}`).
    pub fn references(&self) -> &BTreeMap<String, Uuid> {
        &self.references
    }

    /// Its data as `T` (a [`BlockRef`](super::BlockRef) field gets the referenced document's
    /// id and data).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the data does not fit `T`, naming the field; the value of a
    /// secret field is never shown.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.decode_with(&[])
    }

    /// [`decode`](Self::decode), with more fields whose values must not show in errors.
    pub(super) fn decode_with<T: DeserializeOwned>(&self, more_secret_fields: &[String]) -> Result<T, Error> {
        let mut data = self.data.clone();
        for (field, id) in &self.references {
            if let Some(Value::Object(nested)) = data.get_mut(field) {
                nested.insert(
                    "$ref".into(),
                    serde_json::json!({ "block_document_id": id.to_string() }),
                );
            }
        }
        serde_path_to_error::deserialize(Value::Object(data)).map_err(|e| {
            let path = e.path().to_string();
            let mut secret_fields = self.secret_fields();
            secret_fields.extend_from_slice(more_secret_fields);
            let unknown_secrets = self.block_schema.is_none() && self.secrets.included();
            let at = if path == "." { String::new() } else { format!("field `{path}`: ") };
            let problem = if path != "." && (unknown_secrets || touches_secret(&path, &secret_fields)) {
                format!("{at}it does not fit (the field is or holds a secret: its value is not shown)")
            } else {
                format!("{at}{}", e.into_inner())
            };
            Error::invalid(
                "block data",
                format!(
                    "the block document {} does not hold a {}: {problem}; read it with blocks().documents() to see its data, or change the type to match",
                    self.label(),
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// The data a save compares with what it would send: a nested block saved as a document
    /// of its own is its reference, as a save writes it.
    pub(super) fn stored_data(&self) -> Map<String, Value> {
        let mut data = self.data.clone();
        for (field, id) in &self.references {
            data.insert(
                field.clone(),
                serde_json::json!({ "$ref": { "block_document_id": id.to_string() } }),
            );
        }
        data
    }

    /// The same document with its secret fields obfuscated, as a read without secrets gives it.
    pub(super) fn obfuscated(mut self) -> BlockDocument {
        self.data = self.data();
        self.secrets = Secrets::Obfuscate;
        self
    }

    /// `slug/name`, as Python's `Block.load` names documents.
    fn label(&self) -> String {
        format!(
            "{}/{}",
            self.block_type_slug().unwrap_or("?"),
            self.name.as_deref().unwrap_or("(anonymous)")
        )
    }
}

impl fmt::Debug for BlockDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockDocument")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("block_type", &self.block_type_slug())
            .field("block_schema_id", &self.block_schema_id)
            .field("is_anonymous", &self.is_anonymous)
            .field("data", &self.data())
            .field("references", &self.references)
            .field("secrets", &self.secrets)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .finish()
    }
}

/// Block documents; from [`Blocks::documents`](super::Blocks::documents). Every read says
/// whether it returns secret values ([`Secrets`]).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use futures_util::TryStreamExt;
/// use prefect_client::query::BlockDocumentQuery;
/// use prefect_client::resources::blocks::Secrets;
///
/// let documents = client.blocks().documents();
/// let hook = documents.get_by_name("webhook", "alerts", Secrets::Obfuscate).await?;
/// println!("{hook:?}"); // the URL shows as ********
/// let secrets: Vec<_> =
///     documents.stream(BlockDocumentQuery::of_type("secret"), Secrets::Obfuscate).try_collect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BlockDocuments<'a> {
    client: &'a Client,
}

impl<'a> BlockDocuments<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        BlockDocuments { client }
    }

    /// Saves `data` as a new document named `name` with this block schema (from
    /// [`BlockSchemas::get_latest`](super::BlockSchemas::get_latest), say). The data is checked
    /// against the schema first: required fields present, each of the type its schema says.
    /// For your own Rust types, prefer [`Blocks::save`](super::Blocks::save).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, data that is not a JSON object or does not fit
    /// the schema (naming the field, never showing its value), or a schema without a block type
    /// (nothing sent); [`Error::Conflict`] when the type has a document of this name; any other
    /// error of the request.
    pub async fn create(
        &self,
        schema: &BlockSchema,
        name: &str,
        data: &impl Serialize,
    ) -> Result<BlockDocument, Error> {
        let name = generated_name("block document name", name)?;
        let Some(block_type_id) = schema.block_type_id else {
            return Err(Error::invalid(
                "block schema",
                "it names no block type; read the schema from the server (blocks().schemas())",
            ));
        };
        let data = json_object("block data", data)?;
        check_against(schema, &data, Extent::Whole)?;
        let body = BlockDocumentCreate {
            block_schema_id: schema.id,
            block_type_id,
            data,
            is_anonymous: false,
            name: Some(name),
        };
        let created = call!(self.client, create_block_document(&body))?;
        Ok(BlockDocument::from_generated(created, Secrets::Obfuscate))
    }

    /// The document with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no document has this id; any other error of the request.
    pub async fn get(&self, id: Uuid, secrets: Secrets) -> Result<BlockDocument, Error> {
        let document = call!(
            self.client,
            read_block_document_by_id(&id, Some(secrets.included()))
        )?;
        Ok(BlockDocument::from_generated(document, secrets))
    }

    /// The document named `name` of the block type `block_type_slug` (Python's
    /// `Block.load("slug/name")` reads this one).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad slug or name (nothing sent); [`Error::NotFound`] when
    /// there is none; any other error of the request.
    pub async fn get_by_name(
        &self,
        block_type_slug: &str,
        name: &str,
        secrets: Secrets,
    ) -> Result<BlockDocument, Error> {
        check_path_slug(block_type_slug)?;
        crate::resources::check_name("block document name", name)?;
        let document = call!(
            self.client,
            read_block_document_by_name_for_block_type(block_type_slug, name, Some(secrets.included()))
        )?;
        Ok(BlockDocument::from_generated(document, secrets))
    }

    /// Changes the document with this id: its data (merged into the stored data, or replacing
    /// it) and its schema; await it (or [`send`](UpdateBlockDocument::send) it).
    pub fn update(&self, id: Uuid) -> UpdateBlockDocument {
        UpdateBlockDocument {
            client: self.client.clone(),
            id,
            data: None,
            extent: Extent::Partial,
            schema: None,
        }
    }

    /// Deletes the document with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no document has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_block_document(&id))
    }

    /// Deletes the document named `name` of the block type `block_type_slug`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad slug or name (nothing sent); [`Error::NotFound`] when
    /// there is none; any other error of the requests.
    pub async fn delete_by_name(&self, block_type_slug: &str, name: &str) -> Result<(), Error> {
        let document = self
            .get_by_name(block_type_slug, name, Secrets::Obfuscate)
            .await?;
        self.delete(document.id).await
    }

    /// One page of documents matching `filter` (its `limit` and `offset` apply), by name;
    /// `BlockDocumentQuery::of_type(slug)` for one block type's. `secrets` sets the query's
    /// `include_secrets`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `limit` below 1 (nothing sent);
    /// [`Error::Validation`] for a filter or page size the server refuses; any other error of the request.
    pub async fn list_page(
        &self,
        filter: &BlockDocumentQuery,
        secrets: Secrets,
    ) -> Result<Vec<BlockDocument>, Error> {
        let filter = BlockDocumentQuery {
            include_secrets: secrets.included(),
            ..filter.clone()
        };
        let page = pagination::page(self.client, &filter).await?;
        Ok(page
            .into_iter()
            .map(|document| BlockDocument::from_generated(document, secrets))
            .collect())
    }

    /// Every document matching `filter` (`BlockDocumentQuery::default()` for all named ones,
    /// `BlockDocumentQuery::of_type(slug)` for one block type's).
    ///
    /// # Errors
    /// The stream's last item is the error that stopped it: those of `list_page`, and an error
    /// of any page after the first.
    pub fn stream(
        &self,
        filter: BlockDocumentQuery,
        secrets: Secrets,
    ) -> impl Stream<Item = Result<BlockDocument, Error>> + Send + use<> {
        let filter = BlockDocumentQuery {
            include_secrets: secrets.included(),
            ..filter
        };
        pagination::stream(self.client, filter)
            .map(move |document| document.map(|document| BlockDocument::from_generated(document, secrets)))
    }
}

/// Checks `data` against `schema`, as an [`Error::InvalidInput`] naming the field.
pub(super) fn check_against(
    schema: &BlockSchema,
    data: &Map<String, Value>,
    extent: Extent,
) -> Result<(), Error> {
    check_data(&schema.fields, data, extent).map_err(|problem| {
        let slug = schema
            .fields
            .get("block_type_slug")
            .and_then(Value::as_str)
            .unwrap_or("its block type");
        Error::invalid(
            "block data",
            format!(
                "{problem}; give data that fits the schema of `{slug}` (its `properties` and `required`)"
            ),
        )
    })
}

/// Changes to a block document; from [`BlockDocuments::update`].
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to update the block document"]
pub struct UpdateBlockDocument {
    client: Client,
    id: Uuid,
    data: Option<Result<Map<String, Value>, InvalidField>>,
    extent: Extent,
    schema: Option<BlockSchema>,
}

impl UpdateBlockDocument {
    /// Fields to change: merged into the stored data (fields not given keep their value), as
    /// Prefect does by default.
    pub fn data(mut self, data: &impl Serialize) -> Self {
        self.data = Some(json_object("block data", data));
        self.extent = Extent::Partial;
        self
    }

    /// The whole data: fields not given are removed (what Python's `save(overwrite=True)` of a
    /// whole block amounts to).
    pub fn replace_data(mut self, data: &impl Serialize) -> Self {
        self.data = Some(json_object("block data", data));
        self.extent = Extent::Whole;
        self
    }

    /// Moves the document to this schema of its block type (and checks the data against it).
    pub fn block_schema(mut self, schema: &BlockSchema) -> Self {
        self.schema = Some(schema.clone());
        self
    }

    /// Sends the changes. Data is checked against the schema given with
    /// [`block_schema`](Self::block_schema), else against the document's own (read first).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for nothing to change, or data that is not a JSON object or does
    /// not fit the schema (naming the field, never showing its value; nothing written);
    /// [`Error::NotFound`] when no document has the id; any other error of the requests.
    pub async fn send(self) -> Result<(), Error> {
        let data = self.data.transpose()?;
        if data.is_none() && self.schema.is_none() {
            return Err(Error::invalid(
                "block document update",
                "nothing to change; give .data(..), .replace_data(..) or .block_schema(..)",
            ));
        }
        if let Some(data) = &data {
            let schema = match &self.schema {
                Some(schema) => schema.clone(),
                None => {
                    let document = BlockDocuments::new(&self.client)
                        .get(self.id, Secrets::Obfuscate)
                        .await?;
                    match document.block_schema {
                        Some(schema) => schema,
                        None => {
                            super::BlockSchemas::new(&self.client)
                                .get(document.block_schema_id)
                                .await?
                        }
                    }
                }
            };
            check_against(&schema, data, self.extent)?;
        }
        let body = BlockDocumentUpdate {
            block_schema_id: self.schema.map(|s| s.id),
            data: data.unwrap_or_default(),
            merge_existing_data: self.extent == Extent::Partial,
        };
        call!(self.client, update_block_document_data(&self.id, &body))
    }
}

send_on_await! {
    UpdateBlockDocument => ();
}
