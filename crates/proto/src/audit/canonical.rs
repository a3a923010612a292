//! Canonical JSON: sorted keys at every depth, no whitespace.

use serde_json::Value;

/// Writes `entries`, already in key order, as a compact JSON object.
pub(super) fn write_object<'v>(entries: impl Iterator<Item = (&'v str, &'v Value)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_scalar(&Value::from(key), out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

/// Sorts object keys ourselves: serde_json's `preserve_order` feature may be on.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&str, &Value)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write_object(entries.into_iter(), out);
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("writing a JSON scalar to memory cannot fail");
}

/// Floats may not survive a parse and print unchanged, and then a hash would break.
pub(super) fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => !(n.is_i64() || n.is_u64()),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(value: &Value) -> String {
        let mut out = Vec::new();
        write_canonical(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sorts_keys_at_every_depth() {
        let mut inner = serde_json::Map::new();
        inner.insert("z".into(), json!(1));
        inner.insert("a".into(), json!([{"y": true, "b": null}, "s"]));
        let mut outer = serde_json::Map::new();
        outer.insert("k".into(), Value::Object(inner));
        outer.insert("B".into(), json!(-3));
        assert_eq!(canonical(&Value::Object(outer)), r#"{"B":-3,"k":{"a":[{"b":null,"y":true},"s"],"z":1}}"#);
    }

    #[test]
    fn escapes_strings() {
        let value = json!({"q\"uote": "line\nbreak\u{1}é"});
        assert_eq!(canonical(&value), r#"{"q\"uote":"line\nbreak\u0001é"}"#);
    }

    #[test]
    fn finds_floats() {
        assert!(!has_float(&json!({"a": [1, -2, u64::MAX], "b": "1.5"})));
        assert!(has_float(&json!({"a": [1, {"b": 1.5}]})));
        assert!(has_float(&json!(1.0)));
    }
}
