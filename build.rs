//! Generates the typed Prefect REST client from the vendored `openapi.yaml`.
//!
//! openapi.yaml (OpenAPI 3.1, Prefect's own schema) → `build/normalize.rs` (3.0 form progenitor
//! accepts, clean operation names, every 2xx a success) → progenitor → `build/tolerant.rs`
//! (answers of newer servers decode: unknown fields, enum values and union members are kept) →
//! `$OUT_DIR/prefect_api.rs`, included by `src/generated.rs`. Nothing generated is edited by hand.

#[path = "build/normalize.rs"]
mod normalize;
#[path = "build/tolerant.rs"]
mod tolerant;

use std::error::Error;
use std::path::{Path, PathBuf};

/// The generated file's name inside OUT_DIR.
const GENERATED_FILE: &str = "prefect_api.rs";
/// The list of every operation's name inside OUT_DIR, for the retry table's test.
const OPERATIONS_FILE: &str = "operations.rs";

fn main() {
    println!("cargo:rerun-if-changed=openapi.yaml");
    println!("cargo:rerun-if-changed=build/normalize.rs");
    println!("cargo:rerun-if-changed=build/tolerant.rs");
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(error) = generate() {
        eprintln!("error: generating the Prefect client from openapi.yaml failed: {error}");
        std::process::exit(1);
    }
}

fn generate() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut document = read_document(&manifest_dir.join("openapi.yaml"))?;
    normalize::normalize(&mut document)?;
    // Kept beside the generated code for whoever needs to see what progenitor was given.
    std::fs::write(
        out_dir.join("openapi.normalized.json"),
        serde_json::to_vec_pretty(&document)?,
    )?;
    std::fs::write(out_dir.join(OPERATIONS_FILE), operations_list(&document))?;
    let spec = parse_spec(document)?;
    let code = generate_code(&spec)?;
    std::fs::write(out_dir.join(GENERATED_FILE), code)?;
    Ok(())
}

/// Parses the YAML document into JSON values, which the normalization steps work on.
fn read_document(path: &Path) -> Result<serde_json::Value, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e} (run scripts/regenerate-openapi.sh)",
            path.display()
        )
    })?;
    let document: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("{} is not valid YAML: {e}", path.display()))?;
    Ok(document)
}

/// `const OPERATIONS: &[&str]`: every operation's (renamed) id, sorted.
fn operations_list(document: &serde_json::Value) -> String {
    let mut names: Vec<&str> = document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|item| item.as_object())
        .flat_map(|item| item.values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    names.sort_unstable();
    let items: String = names.iter().map(|n| format!("    {n:?},\n")).collect();
    format!(
        "/// Every operation of openapi.yaml, by generated method name.\nconst OPERATIONS: &[&str] = &[\n{items}];\n"
    )
}

/// Parses the normalized document as the OpenAPI 3.0 model progenitor takes.
fn parse_spec(document: serde_json::Value) -> Result<openapiv3::OpenAPI, Box<dyn Error>> {
    let spec = serde_json::from_value(document)
        .map_err(|e| format!("the normalized document is not OpenAPI 3.0 that openapiv3 accepts: {e}"))?;
    Ok(spec)
}

/// Runs progenitor over the document and formats the result.
///
/// Every operation goes through one hand-written `ClientHooks` implementation
/// (`src/transport.rs`), which owns headers, tracing and retries.
fn generate_code(spec: &openapiv3::OpenAPI) -> Result<String, Box<dyn Error>> {
    let inner_type: proc_macro2::TokenStream = "crate::transport::Transport".parse()?;
    let mut settings = progenitor::GenerationSettings::new();
    settings
        .with_interface(progenitor::InterfaceStyle::Positional)
        .with_tag(progenitor::TagStyle::Merged)
        .with_hooks(progenitor::HooksMode::Expected)
        .with_inner_type(inner_type);
    let mut generator = progenitor::Generator::new(&settings);
    // progenitor reports most problems as errors but asserts on some; turn both into a message.
    let tokens = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| generator.generate_tokens(spec)))
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            format!(
                "progenitor stopped on a construct the normalization does not handle yet \
                 (add a step to build/normalize.rs): {message}"
            )
        })?
        .map_err(|e| format!("progenitor rejected the normalized document: {e}"))?;
    let mut file: syn::File =
        syn::parse2(tokens).map_err(|e| format!("progenitor produced code that does not parse: {e}"))?;
    tolerant::make_tolerant(&mut file);
    Ok(prettyplease::unparse(&file))
}
