//! The tolerant reader: post-processing of progenitor's output so that answers of a newer
//! Prefect server (or Prefect Cloud) decode. Each step is named and unit-tested
//! (`tests/tolerant_reader.rs`); none edits a type by name.
//!
//! 1. [`ignore_unknown_fields`]: no struct denies unknown fields.
//! 2. [`open_string_enums`]: a string enum of two or more values gets a last variant
//!    `Unknown(String)` that keeps any other value and serializes it back unchanged.
//!    Single-value enums (Prefect's `type` constants) stay closed: they tell union members apart.
//! 3. [`open_unions`]: an untagged or internally tagged union gets a last variant
//!    `Unknown(serde_json::Value)` that keeps any member it does not know.

use syn::{Attribute, Fields, Item, ItemEnum, ItemStruct, parse_quote};

/// Applies every step to the generated file.
pub fn make_tolerant(file: &mut syn::File) {
    let mut opened = Vec::new();
    for_each_item(&mut file.items, &mut |item| {
        if let Item::Struct(s) = item {
            ignore_unknown_fields(s);
        }
        if let Item::Enum(e) = item
            && (open_string_enums(e) || open_unions(e))
        {
            opened.push(e.ident.to_string());
        }
    });
    for_each_item(&mut file.items, &mut |item| {
        if let Item::Impl(block) = item {
            display_unknown(block, &opened);
        }
    });
}

/// Visits every item, inside modules too.
fn for_each_item(items: &mut [Item], f: &mut dyn FnMut(&mut Item)) {
    for item in items {
        if let Item::Mod(module) = item
            && let Some((_, inner)) = &mut module.content
        {
            for_each_item(inner, f);
        }
        f(item);
    }
}

/// Whether an attribute is `#[serde(...)]` containing `word`.
fn serde_has(attr: &Attribute, word: &str) -> bool {
    attr.path().is_ident("serde") && attr_text(attr).split([',', '(', ')', ' ']).any(|w| w == word)
}

fn attr_text(attr: &Attribute) -> String {
    match &attr.meta {
        syn::Meta::List(list) => list.tokens.to_string(),
        _ => String::new(),
    }
}

/// Step 1: drops `deny_unknown_fields` from a struct's serde attributes (and the attribute if
/// nothing else is left in it).
pub fn ignore_unknown_fields(item: &mut ItemStruct) {
    item.attrs.retain_mut(|attr| {
        if !serde_has(attr, "deny_unknown_fields") {
            return true;
        }
        let rest: Vec<String> = attr_text(attr)
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty() && *part != "deny_unknown_fields")
            .map(String::from)
            .collect();
        if rest.is_empty() {
            return false;
        }
        let tokens: proc_macro2::TokenStream = rest.join(", ").parse().expect("serde arguments");
        *attr = parse_quote!(#[serde(#tokens)]);
        true
    });
}

/// Whether an enum is a plain string enum: unit variants only, each renamed to its value.
fn is_string_enum(item: &ItemEnum) -> bool {
    !item.variants.is_empty()
        && item
            .variants
            .iter()
            .all(|v| matches!(v.fields, Fields::Unit) && v.attrs.iter().any(|a| serde_has(a, "rename")))
        && !item
            .attrs
            .iter()
            .any(|a| serde_has(a, "untagged") || serde_has(a, "tag"))
}

/// Step 2: adds `Unknown(String)` to string enums of two or more values; returns whether it
/// did. `Copy` goes from the derives (a `String` is not `Copy`).
pub fn open_string_enums(item: &mut ItemEnum) -> bool {
    if !is_string_enum(item) || item.variants.len() < 2 {
        return false;
    }
    drop_derive(&mut item.attrs, "Copy");
    item.variants.push(parse_quote! {
        /// A value this SDK does not know (from a newer Prefect server or Prefect Cloud), kept
        /// as the server sent it.
        #[serde(untagged)]
        Unknown(::std::string::String)
    });
    true
}

/// Step 3: adds `Unknown(serde_json::Value)` to untagged and internally tagged unions;
/// returns whether it did.
pub fn open_unions(item: &mut ItemEnum) -> bool {
    let union = item
        .attrs
        .iter()
        .any(|a| serde_has(a, "untagged") || serde_has(a, "tag"));
    let has_data = item.variants.iter().any(|v| !matches!(v.fields, Fields::Unit));
    if !union || !has_data {
        return false;
    }
    drop_derive(&mut item.attrs, "Copy");
    drop_derive(&mut item.attrs, "Eq");
    drop_derive(&mut item.attrs, "Hash");
    drop_derive(&mut item.attrs, "Ord");
    drop_derive(&mut item.attrs, "PartialOrd");
    item.variants.push(parse_quote! {
        /// A member this SDK does not know (from a newer Prefect server or Prefect Cloud), kept
        /// as the server sent it.
        #[serde(untagged)]
        Unknown(::serde_json::Value)
    });
    true
}

/// Removes one trait from `#[derive(...)]`.
fn drop_derive(attrs: &mut [Attribute], name: &str) {
    for attr in attrs.iter_mut().filter(|a| a.path().is_ident("derive")) {
        let kept: Vec<String> = attr_text(attr)
            .split(',')
            .map(|part| part.split_whitespace().collect::<String>())
            .filter(|part| !part.is_empty() && part != name && !part.ends_with(&format!("::{name}")))
            .collect();
        let tokens: proc_macro2::TokenStream = kept.join(", ").parse().expect("derive list");
        *attr = parse_quote!(#[derive(#tokens)]);
    }
}

/// `Display` of an opened enum writes an unknown value as it came (a string as is, JSON as
/// JSON).
pub fn display_unknown(block: &mut syn::ItemImpl, opened: &[String]) {
    let Some((trait_path, _)) = &block.trait_ else {
        return;
    };
    let is_display = trait_path.segments.last().is_some_and(|s| s.ident == "Display");
    let syn::Type::Path(self_type) = &*block.self_ty else {
        return;
    };
    let Some(name) = self_type.path.segments.last().map(|s| s.ident.to_string()) else {
        return;
    };
    if !is_display || !opened.contains(&name) {
        return;
    }
    for item in &mut block.items {
        let syn::ImplItem::Fn(function) = item else {
            continue;
        };
        for statement in &mut function.block.stmts {
            if let syn::Stmt::Expr(syn::Expr::Match(m), _) = statement {
                // `match *self` binds by value (so `ref`), `match self` by reference.
                let by_value = matches!(&*m.expr, syn::Expr::Unary(_));
                m.arms.push(if by_value {
                    parse_quote!(Self::Unknown(ref value) => ::std::fmt::Display::fmt(value, f),)
                } else {
                    parse_quote!(Self::Unknown(value) => ::std::fmt::Display::fmt(value, f),)
                });
            }
        }
    }
}
