//! The web's own gateway-wide state: which live terminals belong to which web session,
//! so ending a web session (logout, expiry) ends its terminals too.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Web state kept in [`crate::Gateway`].
#[derive(Default)]
pub struct WebState {
    terminals: Mutex<HashMap<String, HashSet<String>>>,
}

impl WebState {
    /// Notes a live session opened from a web session (by the web session's id hash).
    pub fn terminal_opened(&self, web_session: &str, live_id: &str) {
        self.lock().entry(web_session.to_owned()).or_default().insert(live_id.to_owned());
    }

    /// Forgets a live session that ended.
    pub fn terminal_closed(&self, web_session: &str, live_id: &str) {
        let mut map = self.lock();
        if let Some(set) = map.get_mut(web_session) {
            set.remove(live_id);
            if set.is_empty() {
                map.remove(web_session);
            }
        }
    }

    /// The live sessions a web session has open.
    pub fn terminals_of(&self, web_session: &str) -> Vec<String> {
        self.lock().get(web_session).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.terminals.lock().expect("web state lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_are_tracked_per_web_session() {
        let state = WebState::default();
        state.terminal_opened("w1", "a");
        state.terminal_opened("w1", "b");
        state.terminal_opened("w2", "c");
        let mut of_w1 = state.terminals_of("w1");
        of_w1.sort();
        assert_eq!(of_w1, ["a", "b"]);
        state.terminal_closed("w1", "a");
        state.terminal_closed("w1", "b");
        assert!(state.terminals_of("w1").is_empty());
        assert_eq!(state.terminals_of("w2"), ["c"]);
        assert!(state.lock().get("w1").is_none());
    }
}
