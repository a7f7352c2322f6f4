//! Blocks against the real server, and against Prefect's own Python classes on both sides:
//! secrets saved from Rust and read by `Secret.load(..).get()` (and the other way), a Rust
//! block type read and written by a Python `Block` subclass of the same slug and fields,
//! nested blocks stored as references, saves that change nothing, bad data refused before
//! anything is sent, and secrets that never show.

mod common;

use std::collections::BTreeMap;

use common::serving::python;
use common::{client, server, unique};
use futures_util::TryStreamExt;
use prefect_client::query::BlockDocumentQuery;
use prefect_client::resources::Change;
use prefect_client::resources::blocks::{
    Block, BlockField, BlockRef, LocalFileSystem, Secret, SecretStr, Secrets, Webhook, WebhookMethod,
    schema_checksum, schema_fields,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A warehouse to load rows into: a block type of this test's own.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Warehouse {
    /// The host to connect to.
    host: String,
    port: u16,
    password: SecretStr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

impl Block for Warehouse {
    const TYPE_SLUG: &'static str = "rust-warehouse";
    const TYPE_NAME: &'static str = "Rust Warehouse";
    const LOGO_URL: Option<&'static str> = Some("https://example.com/warehouse.png");
}

/// The same block type as a Python `Block` subclass (`python(.., WAREHOUSE_PY + script, ..)`).
const WAREHOUSE_PY: &str = "import json, sys\n\
from pydantic import SecretStr\n\
from prefect.blocks.core import Block\n\
class RustWarehouse(Block):\n    \
    _block_type_slug = 'rust-warehouse'\n    \
    host: str\n    \
    port: int\n    \
    password: SecretStr\n    \
    tags: list[str] = []\n";

fn warehouse(password: &str) -> Warehouse {
    Warehouse {
        host: "db.internal".into(),
        port: 5432,
        password: SecretStr::new(password),
        tags: vec!["prod".into()],
    }
}

#[tokio::test]
async fn a_secret_saved_from_rust_is_read_by_pythons_secret_load() {
    let client = client().await;
    let (text, json) = (unique("text"), unique("json"));
    let saved = client
        .blocks()
        .save(&text, &Secret::new("sk-from-rust"))
        .await
        .unwrap();
    assert_eq!(saved.change, Change::Created);
    let login = Secret::json(&json!({ "user": "ada", "password": "pw-from-rust" })).unwrap();
    client.blocks().save(&json, &login).await.unwrap();
    let script = "import json, sys\n\
        from prefect.blocks.system import Secret\n\
        print(json.dumps([Secret.load(sys.argv[1]).get(), Secret.load(sys.argv[2]).get()]))\n";
    let printed = python(server().await.api_url(), script, &[&text, &json]).await;
    let read: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        read,
        json!(["sk-from-rust", { "user": "ada", "password": "pw-from-rust" }])
    );
}

#[tokio::test]
async fn a_secret_saved_by_python_is_read_from_rust() {
    let client = client().await;
    let (text, json) = (unique("py-text"), unique("py-json"));
    let script = "import sys\n\
        from prefect.blocks.system import Secret\n\
        Secret(value='sk-from-python').save(sys.argv[1])\n\
        Secret(value={'token': 'tk-from-python', 'n': 2}).save(sys.argv[2])\n";
    python(server().await.api_url(), script, &[&text, &json]).await;
    let secret: Secret = client.blocks().load(&text).await.unwrap();
    assert_eq!(secret.get::<String>().unwrap(), "sk-from-python");
    assert_eq!(secret.value.expose_str(), Some("sk-from-python"));
    let secret: Secret = client.blocks().load(&json).await.unwrap();
    assert_eq!(
        secret.get::<Value>().unwrap(),
        json!({ "token": "tk-from-python", "n": 2 })
    );
    // Saving the same value from Rust changes nothing Python wrote.
    let again = Secret::json(&json!({ "token": "tk-from-python", "n": 2 })).unwrap();
    assert_eq!(
        client.blocks().save(&json, &again).await.unwrap().change,
        Change::Unchanged
    );
}

#[tokio::test]
async fn prefects_webhook_and_local_file_system_blocks_cross_over_with_python() {
    let client = client().await;
    let (hook, fs, py_hook) = (unique("hook"), unique("fs"), unique("py-hook"));
    let mut webhook = Webhook::new("https://hooks.example/rust");
    webhook.method = WebhookMethod::Put;
    webhook
        .headers
        .insert("Authorization".into(), SecretStr::new("Bearer rust"));
    let saved = client.blocks().save(&hook, &webhook).await.unwrap();
    // Saved with the server's own schema of the type: none registered from Rust.
    let server_schema = client.blocks().schemas().get_latest("webhook").await.unwrap();
    assert_eq!(saved.object.block_schema_id, server_schema.id);
    client
        .blocks()
        .save(&fs, &LocalFileSystem::new("/data/rust"))
        .await
        .unwrap();
    let script = "import json, sys\n\
        from prefect.blocks.webhook import Webhook\n\
        from prefect.filesystems import LocalFileSystem\n\
        w = Webhook.load(sys.argv[1])\n\
        print(json.dumps([w.method, w.url.get_secret_value(), w.headers.get_secret_value(), LocalFileSystem.load(sys.argv[2]).basepath]))\n\
        Webhook(method='GET', url='https://hooks.example/python', headers={'X-Key': 'py'}).save(sys.argv[3])\n";
    let printed = python(server().await.api_url(), script, &[&hook, &fs, &py_hook]).await;
    let read: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        read,
        json!(["PUT", "https://hooks.example/rust", { "Authorization": "Bearer rust" }, "/data/rust"])
    );
    let from_python: Webhook = client.blocks().load(&py_hook).await.unwrap();
    assert_eq!(from_python.method, WebhookMethod::Get);
    assert_eq!(from_python.url.expose_secret(), "https://hooks.example/python");
    assert_eq!(from_python.headers["X-Key"].expose_secret(), "py");
}

#[tokio::test]
async fn a_rust_block_type_is_read_and_written_by_a_python_block_of_the_same_slug_and_fields() {
    let client = client().await;
    let registration = client.blocks().register::<Warehouse>().await.unwrap();
    assert_eq!(registration.block_type.slug, "rust-warehouse");
    assert_eq!(*registration.block_type.name, "Rust Warehouse");
    assert_eq!(
        registration.block_type.description.as_deref(),
        Some("A warehouse to load rows into: a block type of this test's own.")
    );
    assert_eq!(
        registration.block_type.logo_url.as_deref(),
        Some("https://example.com/warehouse.png")
    );
    // The server computed the schema's checksum itself (in Python) from the fields sent.
    let fields = schema_fields::<Warehouse>().unwrap();
    assert_eq!(registration.block_schema.checksum, schema_checksum(&fields));
    assert_eq!(
        registration.block_schema.fields["secret_fields"],
        json!(["password"])
    );
    assert_eq!(
        registration.block_schema.fields["block_type_slug"],
        "rust-warehouse"
    );
    // Registering again finds the same type and schema.
    let again = client.blocks().register::<Warehouse>().await.unwrap();
    assert_eq!(
        (again.block_type.id, again.block_schema.id),
        (registration.block_type.id, registration.block_schema.id)
    );

    let (rust_doc, python_doc) = (unique("from-rust"), unique("from-python"));
    client
        .blocks()
        .save(&rust_doc, &warehouse("pw-rust"))
        .await
        .unwrap();
    let script = format!(
        "{WAREHOUSE_PY}\
         w = RustWarehouse.load(sys.argv[1])\n\
         print(json.dumps([w.host, w.port, w.password.get_secret_value(), w.tags]))\n\
         RustWarehouse(host='py.internal', port=6543, password='pw-python', tags=['a', 'b']).save(sys.argv[2])\n\
         fields = json.loads(sys.argv[3])\n\
         print(Block._calculate_schema_checksum(fields))\n"
    );
    let printed = python(
        server().await.api_url(),
        &script,
        &[&rust_doc, &python_doc, &serde_json::to_string(&fields).unwrap()],
    )
    .await;
    let mut lines = printed.lines();
    let read: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(read, json!(["db.internal", 5432, "pw-rust", ["prod"]]));
    assert_eq!(
        lines.next().unwrap(),
        schema_checksum(&fields),
        "Python's _calculate_schema_checksum of the same fields"
    );
    let from_python: Warehouse = client.blocks().load(&python_doc).await.unwrap();
    assert_eq!(
        (
            from_python.host.as_str(),
            from_python.port,
            from_python.password.expose_secret()
        ),
        ("py.internal", 6543, "pw-python")
    );
    assert_eq!(from_python.tags, ["a", "b"]);
}

#[tokio::test]
async fn saving_the_same_value_twice_changes_nothing_and_a_changed_value_updates() {
    let client = client().await;
    let name = unique("warehouse");
    let blocks = client.blocks();
    let created = blocks.save(&name, &warehouse("pw-1")).await.unwrap();
    assert_eq!(created.change, Change::Created);
    let unchanged = blocks.save(&name, &warehouse("pw-1")).await.unwrap();
    assert_eq!(unchanged.change, Change::Unchanged);
    assert_eq!(unchanged.object.id, created.object.id);
    let read = blocks
        .documents()
        .get(created.object.id, Secrets::Obfuscate)
        .await
        .unwrap();
    assert_eq!(read.updated, created.object.updated, "nothing was written");
    // A changed secret alone is a change: the comparison reads the stored data with secrets.
    let updated = blocks.save(&name, &warehouse("pw-2")).await.unwrap();
    assert_eq!(updated.change, Change::Updated);
    assert_eq!(updated.object.id, created.object.id);
    let loaded: Warehouse = blocks.load(&name).await.unwrap();
    assert_eq!(loaded.password.expose_secret(), "pw-2");
    // An update overwrites: a field the new value leaves out (no tags) is gone.
    let mut fewer = warehouse("pw-2");
    fewer.tags.clear();
    assert_eq!(blocks.save(&name, &fewer).await.unwrap().change, Change::Updated);
    assert_eq!(
        stored(&client, created.object.id).await,
        json!({ "host": "db.internal", "port": 5432, "password": "pw-2" })
    );
    assert_eq!(
        blocks.save(&name, &fewer).await.unwrap().change,
        Change::Unchanged
    );
}

#[tokio::test]
async fn data_that_does_not_fit_the_block_type_is_refused_naming_the_field_with_nothing_sent() {
    let client = client().await;
    let schema = client.blocks().schemas().get_latest("webhook").await.unwrap();
    let documents = client.blocks().documents();
    let sent = client.requests_sent();
    for (data, field) in [
        (json!({ "url": 5 }), "`url`"),
        (json!({ "method": "POST" }), "`url`"),
        (
            json!({ "url": "https://x", "method": "SHOUT-secret" }),
            "`method`",
        ),
        (
            json!({ "url": "https://x", "headers": ["not", "a", "map"] }),
            "`headers`",
        ),
    ] {
        let err = documents
            .create(&schema, &unique("bad"), &data)
            .await
            .unwrap_err();
        assert!(err.is_client_side(), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(text.contains(field), "{text}");
        assert!(!text.contains("SHOUT-secret"), "{text}");
    }
    let err = documents
        .create(&schema, "a/b", &json!({ "url": "https://x" }))
        .await
        .unwrap_err();
    assert!(
        err.is_client_side() && err.to_string().contains("block document name"),
        "{err}"
    );
    let err = documents
        .update(uuid::Uuid::new_v4())
        .replace_data(&json!({ "verify": "no" }))
        .block_schema(&schema)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`url` is missing"), "{err}");
    let err = client.blocks().save("a/b", &warehouse("pw")).await.unwrap_err();
    assert!(err.is_client_side(), "{err}");
    assert_eq!(client.requests_sent(), sent, "nothing was sent");
    // The same data that fits is accepted.
    let good = documents
        .create(&schema, &unique("good"), &json!({ "url": "https://x" }))
        .await
        .unwrap();
    assert_eq!(good.block_schema_id, schema.id);
}

/// Credentials held by a [`Connection`], saved as a document of their own.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Credentials {
    user: String,
    token: SecretStr,
}

impl Block for Credentials {
    const TYPE_SLUG: &'static str = "rust-credentials";
    const TYPE_NAME: &'static str = "Rust Credentials";
}

/// A connection whose credentials are a saved block document of their own.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Connection {
    url: String,
    credentials: BlockRef<Credentials>,
}

impl Block for Connection {
    const TYPE_SLUG: &'static str = "rust-connection";
    const TYPE_NAME: &'static str = "Rust Connection";
    const BLOCK_FIELDS: &'static [BlockField] = &[BlockField::new::<Credentials>("credentials")];
}

#[tokio::test]
async fn a_nested_block_is_stored_as_a_reference_to_its_own_document_as_python_stores_it() {
    let client = client().await;
    let blocks = client.blocks();
    let (creds, conn) = (unique("creds"), unique("conn"));
    let credentials = Credentials {
        user: "ada".into(),
        token: SecretStr::new("tk-nested"),
    };
    let saved_credentials = blocks.save(&creds, &credentials).await.unwrap().object;
    let connection = Connection {
        url: "https://warehouse".into(),
        credentials: BlockRef::new(saved_credentials.id),
    };
    let saved = blocks.save(&conn, &connection).await.unwrap();
    assert_eq!(saved.change, Change::Created);
    let registration = blocks.register::<Connection>().await.unwrap();
    assert_eq!(
        registration.block_schema.fields["block_schema_references"]["credentials"]["block_type_slug"],
        "rust-credentials"
    );
    assert_eq!(
        registration.block_schema.fields["secret_fields"],
        json!(["credentials.token"])
    );
    // Read back: the reference, and the nested document's data in its place.
    let document = blocks
        .documents()
        .get(saved.object.id, Secrets::Obfuscate)
        .await
        .unwrap();
    assert_eq!(document.references()["credentials"], saved_credentials.id);
    assert_eq!(document.data()["credentials"]["token"], "********");
    let loaded: Connection = blocks.load(&conn).await.unwrap();
    assert_eq!(loaded.credentials.document_id(), saved_credentials.id);
    let nested = loaded.credentials.value().expect("the nested document's data");
    assert_eq!(
        (nested.user.as_str(), nested.token.expose_secret()),
        ("ada", "tk-nested")
    );
    assert_eq!(
        blocks.save(&conn, &connection).await.unwrap().change,
        Change::Unchanged
    );
    // Python's classes of the same slugs read it as a nested block.
    let script = "import sys\n\
        from pydantic import SecretStr\n\
        from prefect.blocks.core import Block\n\
        class RustCredentials(Block):\n    \
            _block_type_slug = 'rust-credentials'\n    \
            user: str\n    \
            token: SecretStr\n\
        class RustConnection(Block):\n    \
            _block_type_slug = 'rust-connection'\n    \
            url: str\n    \
            credentials: RustCredentials\n\
        c = RustConnection.load(sys.argv[1])\n\
        print(c.url, c.credentials.user, c.credentials.token.get_secret_value(), c.credentials._block_document_id)\n";
    let printed = python(server().await.api_url(), script, &[&conn]).await;
    assert_eq!(
        printed.trim(),
        format!("https://warehouse ada tk-nested {}", saved_credentials.id)
    );
}

#[tokio::test]
async fn nothing_holding_a_secret_shows_it_in_debug_display_errors_or_traces() {
    let (captured, _default) = common::capture_traces();

    const SECRET: &str = "pw-SHOULD-NEVER-SHOW";
    let client = client().await;
    let blocks = client.blocks();
    let name = unique("hygiene");
    let mut shown = Vec::new();
    let value = warehouse(SECRET);
    let secret = Secret::json(&json!({ "password": SECRET })).unwrap();
    let mut hook = Webhook::new(format!("https://hooks.example/{SECRET}"));
    hook.headers.insert("Authorization".into(), SECRET.into());
    shown.push(format!(
        "{value:?} {secret:?} {hook:?} {:?}",
        SecretStr::new(SECRET)
    ));
    let saved = blocks.save(&name, &value).await.unwrap();
    shown.push(format!("{saved:?}"));
    blocks.save(&name, &secret).await.unwrap();
    blocks.save(&name, &hook).await.unwrap();
    for slug in ["rust-warehouse", "secret", "webhook"] {
        let document = blocks
            .documents()
            .get_by_name(slug, &name, Secrets::Include)
            .await
            .unwrap();
        assert!(
            serde_json::to_string(document.expose_data())
                .unwrap()
                .contains(SECRET),
            "{slug}: read with its secrets"
        );
        shown.push(format!("{document:?} {:?}", document.data()));
        // A document that does not fit the type asked for: the error names the secret field only.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Wrong {
            password: u32,
            value: u32,
            url: u32,
        }
        let err = document.decode::<Wrong>().unwrap_err();
        shown.push(format!("{err} {err:?}"));
    }
    let listed: Vec<_> = blocks
        .documents()
        .stream(BlockDocumentQuery::of_type("secret"), Secrets::Include)
        .try_collect()
        .await
        .unwrap();
    shown.push(format!("{listed:?}"));
    let err = blocks.load::<Secret>(&unique("missing")).await.unwrap_err();
    shown.push(format!("{err} {err:?}"));

    let traces = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        traces.contains("create_block_document"),
        "the requests were traced: {traces}"
    );
    for text in shown.iter().chain([&traces]) {
        assert!(!text.contains(SECRET), "a secret showed: {text}");
    }
    assert!(shown[0].contains("[REDACTED]"), "{}", shown[0]);
    assert!(shown.iter().any(|s| s.contains("********")));
    assert!(
        shown
            .iter()
            .any(|s| s.contains("field `password`") && s.contains("secret")),
        "{shown:?}"
    );
}

#[tokio::test]
async fn documents_are_read_by_id_and_by_type_and_name_listed_by_type_and_deleted() {
    let client = client().await;
    let blocks = client.blocks();
    let prefix = unique("listed");
    let mut ids = BTreeMap::new();
    for i in 0..3 {
        let name = format!("{prefix}-{i}");
        let saved = blocks
            .save(&name, &LocalFileSystem::new(format!("/data/{i}")))
            .await
            .unwrap();
        ids.insert(name, saved.object.id);
    }
    let other = format!("{prefix}-secret");
    blocks.save(&other, &Secret::new("s")).await.unwrap();

    let (first, first_id) = ids.iter().next().map(|(n, id)| (n.clone(), *id)).unwrap();
    let by_name = blocks
        .documents()
        .get_by_name("local-file-system", &first, Secrets::Obfuscate)
        .await
        .unwrap();
    assert_eq!(by_name.id, first_id);
    assert_eq!(by_name.block_type_slug(), Some("local-file-system"));
    let by_id = blocks
        .documents()
        .get(first_id, Secrets::Obfuscate)
        .await
        .unwrap();
    assert_eq!(by_id.expose_data()["basepath"], "/data/0");

    let filesystems: Vec<String> = blocks
        .documents()
        .stream(
            BlockDocumentQuery::of_type("local-file-system"),
            Secrets::Obfuscate,
        )
        .map_ok(|d| d.name.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    for name in ids.keys() {
        assert!(filesystems.contains(name), "{name} in {filesystems:?}");
    }
    assert!(!filesystems.contains(&other), "only the type's documents");
    let page = blocks
        .documents()
        .list_page(
            &BlockDocumentQuery {
                limit: Some(2),
                ..BlockDocumentQuery::of_type("local-file-system")
            },
            Secrets::Obfuscate,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert!(
        page.iter()
            .all(|d| d.block_type_slug() == Some("local-file-system"))
    );

    let types: Vec<String> = blocks
        .types()
        .stream(Default::default())
        .map_ok(|t| t.slug)
        .try_collect()
        .await
        .unwrap();
    for slug in ["secret", "webhook", "local-file-system"] {
        assert!(types.contains(&slug.to_string()), "{slug}");
        assert!(blocks.types().get_by_slug(slug).await.unwrap().is_protected);
    }
    let webhook = blocks.schemas().get_latest("webhook").await.unwrap();
    assert_eq!(webhook.fields["secret_fields"], json!(["url", "headers.*"]));
    assert_eq!(
        blocks
            .schemas()
            .get_by_checksum(&webhook.checksum)
            .await
            .unwrap()
            .id,
        webhook.id
    );

    blocks.documents().delete(first_id).await.unwrap();
    assert!(
        blocks
            .documents()
            .get(first_id, Secrets::Obfuscate)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let second = ids.keys().nth(1).unwrap();
    blocks
        .documents()
        .delete_by_name("local-file-system", second)
        .await
        .unwrap();
    let err = blocks
        .documents()
        .get_by_name("local-file-system", second, Secrets::Obfuscate)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        blocks
            .load::<LocalFileSystem>(second)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn block_types_schemas_and_documents_are_created_updated_and_deleted_untyped() {
    let client = client().await;
    let (types, schemas, documents) = (
        client.blocks().types(),
        client.blocks().schemas(),
        client.blocks().documents(),
    );
    let slug = format!("untyped-{}", uuid::Uuid::new_v4().simple());
    let block_type = types
        .create(&slug, &format!("Untyped {slug}"))
        .description("made by hand")
        .await
        .unwrap();
    let description = |t: prefect_client::types::BlockType| t.description.unwrap_or_default();
    assert_eq!(
        description(types.get(block_type.id).await.unwrap()),
        "made by hand"
    );
    types.update(block_type.id).description("changed").await.unwrap();
    assert_eq!(description(types.get_by_slug(&slug).await.unwrap()), "changed");
    assert!(types.create(&slug, "Other").await.unwrap_err().is_conflict());
    assert!(
        types
            .create("Not A Slug", "x")
            .await
            .unwrap_err()
            .is_client_side()
    );

    let fields = json!({
        "title": "Untyped",
        "type": "object",
        "properties": { "count": { "type": "integer" }, "key": { "type": "string", "writeOnly": true } },
        "required": ["count"],
        "secret_fields": ["key"],
        "block_type_slug": slug,
        "block_schema_references": {},
    });
    let schema = schemas.create(block_type.id, &fields).version("1").await.unwrap();
    assert_eq!(schema.checksum, schema_checksum(fields.as_object().unwrap()));
    assert_eq!(schemas.get(schema.id).await.unwrap().version, "1");

    let document = documents
        .create(&schema, &unique("doc"), &json!({ "count": 1, "key": "k" }))
        .await
        .unwrap();
    assert_eq!(document.data()["key"], "********");
    documents
        .update(document.id)
        .data(&json!({ "count": 2 }))
        .await
        .unwrap();
    assert_eq!(
        stored(&client, document.id).await,
        json!({ "count": 2, "key": "k" }),
        "merged"
    );
    documents
        .update(document.id)
        .replace_data(&json!({ "count": 3 }))
        .await
        .unwrap();
    assert_eq!(
        stored(&client, document.id).await,
        json!({ "count": 3 }),
        "replaced"
    );
    let err = documents
        .update(document.id)
        .data(&json!({ "count": "x" }))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("field `count` must be of type integer"),
        "{err}"
    );

    documents.delete(document.id).await.unwrap();
    schemas.delete(schema.id).await.unwrap();
    assert!(schemas.get(schema.id).await.unwrap_err().is_not_found());
    types.delete(block_type.id).await.unwrap();
    assert!(types.get_by_slug(&slug).await.unwrap_err().is_not_found());
}

/// The data of a block document as stored, secrets included.
async fn stored(client: &prefect_client::Client, id: uuid::Uuid) -> Value {
    let document = client
        .blocks()
        .documents()
        .get(id, Secrets::Include)
        .await
        .unwrap();
    Value::Object(document.expose_data().clone())
}
