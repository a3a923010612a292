//! `GET /api/openapi.json`: the hand-written OpenAPI document of the JSON API, served
//! with the paths the caller may not know of left out.
//!
//! Paths marked `x-portcullis-permission` are served only to callers whose roles grant
//! that permission from where they are; the marker itself is never served.

use axum::Json;
use serde_json::Value;

use super::auth::MaybeCaller;
use crate::policy::{self, Permission};

/// The document as written.
pub const DOCUMENT: &str = include_str!("openapi.json");
/// The marker of a path that needs a permission.
pub const PERMISSION_KEY: &str = "x-portcullis-permission";

/// Serves the document for this caller.
pub async fn document(maybe: MaybeCaller) -> Json<Value> {
    let may = |permission: Permission| {
        maybe.0.as_ref().is_some_and(|caller| policy::permitted(&caller.identity, caller.client, permission))
    };
    Json(for_caller(may))
}

/// The document with every path whose permission `may` denies removed, and the markers stripped.
pub fn for_caller(may: impl Fn(Permission) -> bool) -> Value {
    let mut doc: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON (tested)");
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|_, item| match item.get(PERMISSION_KEY).and_then(Value::as_str) {
            Some(name) => name.parse::<Permission>().is_ok_and(&may),
            None => true,
        });
        for item in paths.values_mut() {
            if let Some(item) = item.as_object_mut() {
                item.remove(PERMISSION_KEY);
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::web::routes::Listed;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    fn documented(doc: &Value) -> BTreeSet<(String, String, Option<String>)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let permission = item.get(PERMISSION_KEY).and_then(Value::as_str).map(str::to_owned);
            for method in METHODS {
                if item.get(method).is_some() {
                    out.insert((method.to_owned(), path.clone(), permission.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let served: BTreeSet<_> = crate::web::api()
            .listed
            .into_iter()
            .map(|Listed { method, path, permission }| {
                (method.to_owned(), path.to_owned(), permission.map(|p| p.as_str().to_owned()))
            })
            .collect();
        assert_eq!(documented(&doc), served);
        assert!(served.iter().all(|(_, path, _)| path.starts_with("/api/")));
    }

    #[test]
    fn every_reference_resolves() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            let pointer = reference.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "{reference} is not defined");
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(s)) => out.push(s.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn callers_see_only_the_paths_they_may_know_of() {
        let vendor = for_caller(|_| false);
        let text = vendor.to_string();
        for hidden in ["/api/recordings", "/api/audit", "/api/sessions", "/api/users", PERMISSION_KEY, "record"] {
            assert!(!text.contains(hidden), "a vendor's document mentions {hidden:?}");
        }
        assert!(vendor["paths"].get("/api/nodes").is_some());
        let auditor = for_caller(|p| p == Permission::AuditRead);
        assert!(auditor["paths"].get("/api/audit").is_some());
        assert!(auditor["paths"].get("/api/recordings").is_none());
        assert!(!auditor.to_string().contains(PERMISSION_KEY));
    }
}
