//! The one rule for node and user names, shared by the gateway and the agent.

/// Longest name.
pub const MAX_LEN: usize = 64;

/// Whether `name` is 1-64 of `a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !name.starts_with(['.', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule() {
        for good in ["gpu-01", "a", "node.example_1", &"x".repeat(64)] {
            assert!(is_valid(good), "{good}");
        }
        for bad in ["", "Gpu", "-a", ".a", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
