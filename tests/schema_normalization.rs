//! Runs the unit tests of the OpenAPI normalization that `build.rs` applies (build/normalize.rs),
//! and checks the vendored openapi.yaml normalizes completely.

#[allow(dead_code)]
#[path = "../build/normalize.rs"]
mod normalize;

use serde_json::Value;

fn vendored_document() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn vendored_document_is_prefect_3_8_8_with_187_operations() {
    let doc = vendored_document();
    assert_eq!(doc["info"]["version"], "3.8.8");
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| normalize::METHODS.contains(&k.as_str()))
                .count()
        })
        .sum();
    assert_eq!(operations, 187);
}

#[test]
fn vendored_document_normalizes_to_openapi_3_0_with_clean_unique_names() {
    let mut doc = vendored_document();
    normalize::normalize(&mut doc).unwrap();
    let text = serde_json::to_string(&doc).unwrap();
    for leftover in [
        "\"const\"",
        "\"prefixItems\"",
        "\"type\":\"null\"",
        "\"examples\"",
        "x-prefect-api-version",
    ] {
        assert!(!text.contains(leftover), "{leftover} survived normalization");
    }
    let mut names = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for (method, op) in item.as_object().unwrap() {
            if !normalize::METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"].as_str().unwrap().to_string();
            assert!(
                !id.ends_with("_get") && !id.ends_with("_post"),
                "mangled name left: {id}"
            );
            assert_eq!(
                op["responses"].as_object().unwrap().keys().collect::<Vec<_>>(),
                ["2XX"],
                "{id}"
            );
            assert!(names.insert(id.clone()), "duplicate operation name {id}");
        }
    }
    assert_eq!(names.len(), 187);
    assert!(names.contains("create_concurrency_limit"));
    assert!(names.contains("bulk_increment_active_slots_with_lease"));
}
