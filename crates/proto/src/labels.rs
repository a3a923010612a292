//! Node labels: `key=value` pairs that role selectors match.
//!
//! One rule for every place labels come from (`ctl nodes add --labels`, join tokens, the
//! agent's `--labels`, the web console): keys are 1–63 characters of ASCII letters, digits,
//! `.`, `_`, `-` and `/`; values at most 253 characters with no control characters.

use std::collections::BTreeMap;

/// Longest key.
pub const MAX_KEY: usize = 63;
/// Longest value.
pub const MAX_VALUE: usize = 253;

/// Why a label is refused, for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadLabel(String);

/// Checks one label.
pub fn check(key: &str, value: &str) -> Result<(), BadLabel> {
    let key_char = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    if key.is_empty() || key.len() > MAX_KEY || !key.chars().all(key_char) {
        return Err(BadLabel(format!(
            "label key {key:?}: 1 to {MAX_KEY} characters of letters, digits, '.', '_', '-', '/'"
        )));
    }
    if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
        return Err(BadLabel(format!("label {key:?}: the value must be at most {MAX_VALUE} printable characters")));
    }
    Ok(())
}

/// Parses `k=v` items (empty items are skipped), each checked; a repeated key is an error.
pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<BTreeMap<String, String>, BadLabel> {
    let mut labels = BTreeMap::new();
    for item in items.iter().map(|i| i.as_ref().trim()).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else { return Err(BadLabel(format!("{item:?} is not k=v"))) };
        check(key, value)?;
        if labels.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(BadLabel(format!("label {key:?} is given twice")));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_and_bad_ones_say_why() {
        let labels = parse(&["gpu=h800", " site=lab-1 ", "", "gpu.model=NVIDIA H800"]).unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["gpu.model"], "NVIDIA H800");
        assert!(parse(&["novalue"]).unwrap_err().to_string().contains("not k=v"));
        assert!(parse(&["a=1", "a=2"]).unwrap_err().to_string().contains("twice"));
        assert!(parse(&["=x"]).is_err());
        assert!(parse(&["bad key=x"]).is_err());
        assert!(parse(&["k=line\nbreak"]).is_err());
        assert!(check(&"k".repeat(MAX_KEY + 1), "v").is_err());
        assert!(check("k", &"v".repeat(MAX_VALUE + 1)).is_err());
        assert!(check("team/owner", "").is_ok());
    }
}
