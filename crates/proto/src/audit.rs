//! Audit events as JSON lines, chained by SHA-256 so an edited, dropped, inserted or
//! reordered line shows.
//!
//! Each event's `hash` is the hex SHA-256 of its canonical form: every key but `hash`
//! (so `prev_hash` is covered), keys sorted at every depth, no whitespace, absent
//! optional keys omitted. A line is the canonical form with `hash` added.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use canonical::{has_float, write_object};

mod canonical;

/// The `prev_hash` of the first event ever written.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Keys an event holds itself; [`AuditEvent::fields`] may not use them.
pub const RESERVED_KEYS: [&str; 9] =
    ["hash", "node", "prev_hash", "seq", "session_id", "src_ip", "time", "type", "user"];

/// One audited happening, a link in the hash chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it happened, RFC 3339 (e.g. `2025-01-31T12:00:00.123Z`).
    pub time: String,
    /// What happened (`login`, `session_start`, ...); the `type` key on the wire.
    pub kind: String,
    /// The portcullis user involved, if any.
    pub user: Option<String>,
    /// The client's IP address, if any.
    pub src_ip: Option<String>,
    /// The node involved, if any.
    pub node: Option<String>,
    /// The session involved, if any.
    pub session_id: Option<String>,
    /// Further keys, flattened into the event object; no floats, no reserved keys.
    pub fields: Map<String, Value>,
    /// The previous event's `hash`, or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// Hex SHA-256 of [`AuditEvent::canonical_bytes`].
    pub hash: String,
}

/// Why an event cannot be built or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The line is not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The line is JSON but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// A fixed key is absent or has the wrong type.
    #[error("missing or mistyped `{0}`")]
    BadKey(&'static str),
    /// A further field uses a fixed key's name.
    #[error("field `{0}` collides with a fixed key")]
    ReservedField(String),
    /// A further field holds a float, which has no canonical form.
    #[error("field `{0}` holds a non-integer number")]
    FloatField(String),
    /// `time` is not an RFC 3339 timestamp.
    #[error("`time` is not RFC 3339: {0:?}")]
    BadTime(String),
    /// `prev_hash` or `hash` is not 64 lowercase hex digits.
    #[error("`{0}` is not 64 lowercase hex digits")]
    BadHash(&'static str),
    /// The chain has used every sequence number.
    #[error("sequence numbers exhausted")]
    SeqOverflow,
}

impl AuditEvent {
    /// An unsealed event; [`ChainState::append`] sets `seq`, `prev_hash` and `hash`.
    pub fn new(kind: impl Into<String>, time: impl Into<String>) -> Self {
        AuditEvent {
            seq: 0,
            time: time.into(),
            kind: kind.into(),
            user: None,
            src_ip: None,
            node: None,
            session_id: None,
            fields: Map::new(),
            prev_hash: GENESIS_HASH.to_owned(),
            hash: String::new(),
        }
    }

    /// Adds a further field, refusing reserved keys and floats.
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Result<Self, AuditError> {
        let (key, value) = (key.into(), value.into());
        check_field(&key, &value)?;
        self.fields.insert(key, value);
        Ok(self)
    }

    /// Checks everything but `hash`: time, `prev_hash` and the further fields.
    pub fn validate(&self) -> Result<(), AuditError> {
        if !is_rfc3339(&self.time) {
            return Err(AuditError::BadTime(self.time.clone()));
        }
        if !is_hex_hash(&self.prev_hash) {
            return Err(AuditError::BadHash("prev_hash"));
        }
        self.fields.iter().try_for_each(|(k, v)| check_field(k, v))
    }

    /// The bytes hashed: the event without `hash`, keys sorted, no whitespace.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.serialize(false)
    }

    /// Hex SHA-256 of [`AuditEvent::canonical_bytes`].
    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }

    /// Validates the event and sets `hash`.
    pub fn sealed(mut self) -> Result<Self, AuditError> {
        self.validate()?;
        self.hash = self.compute_hash();
        Ok(self)
    }

    /// The event as one JSON line, without the newline.
    pub fn to_line(&self) -> String {
        String::from_utf8(self.serialize(true)).expect("serde_json writes UTF-8")
    }

    /// Reads a line written by [`AuditEvent::to_line`]; does not check `hash`.
    pub fn parse_line(line: &str) -> Result<AuditEvent, AuditError> {
        let Value::Object(mut map) = serde_json::from_str(line)? else {
            return Err(AuditError::NotObject);
        };
        let mut text = |key: &'static str| match map.remove(key) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(AuditError::BadKey(key)),
        };
        let (time, kind, prev_hash, hash) = (text("time")?, text("type")?, text("prev_hash")?, text("hash")?);
        let seq = map.remove("seq").and_then(|v| v.as_u64()).ok_or(AuditError::BadKey("seq"))?;
        let mut optional = |key: &'static str| match map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AuditError::BadKey(key)),
        };
        let (user, src_ip) = (optional("user")?, optional("src_ip")?);
        let (node, session_id) = (optional("node")?, optional("session_id")?);
        let event = AuditEvent { seq, time, kind, user, src_ip, node, session_id, fields: map, prev_hash, hash };
        event.validate()?;
        if !is_hex_hash(&event.hash) {
            return Err(AuditError::BadHash("hash"));
        }
        Ok(event)
    }

    /// The event as a sorted, compact JSON object; fixed keys win over stray fields.
    fn serialize(&self, with_hash: bool) -> Vec<u8> {
        let mut object: BTreeMap<&str, Value> = BTreeMap::new();
        for (key, value) in &self.fields {
            object.insert(key, value.clone());
        }
        object.insert("seq", self.seq.into());
        object.insert("time", self.time.as_str().into());
        object.insert("type", self.kind.as_str().into());
        object.insert("prev_hash", self.prev_hash.as_str().into());
        let optional =
            [("user", &self.user), ("src_ip", &self.src_ip), ("node", &self.node), ("session_id", &self.session_id)];
        for (key, value) in optional {
            match value {
                Some(v) => object.insert(key, v.as_str().into()),
                None => object.remove(key),
            };
        }
        if with_hash {
            object.insert("hash", self.hash.as_str().into());
        } else {
            object.remove("hash");
        }
        let mut out = Vec::new();
        write_object(object.iter().map(|(k, v)| (*k, v)), &mut out);
        out
    }
}

fn check_field(key: &str, value: &Value) -> Result<(), AuditError> {
    if RESERVED_KEYS.contains(&key) {
        return Err(AuditError::ReservedField(key.to_owned()));
    }
    if has_float(value) {
        return Err(AuditError::FloatField(key.to_owned()));
    }
    Ok(())
}

fn is_hex_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, as RFC 3339 section 5.6.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let num = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits.iter().try_fold(0u32, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let date_time = num(0, 4).is_some()
        && at(4, b'-')
        && num(5, 2).is_some_and(|m| (1..=12).contains(&m))
        && at(7, b'-')
        && num(8, 2).is_some_and(|d| (1..=31).contains(&d))
        && at(10, b'T')
        && num(11, 2).is_some_and(|h| h <= 23)
        && at(13, b':')
        && num(14, 2).is_some_and(|m| m <= 59)
        && at(16, b':')
        && num(17, 2).is_some_and(|s| s <= 60);
    if !date_time {
        return false;
    }
    let mut rest = &b[19..];
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &tail[digits..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'));
            two(*h1, *h2).is_some_and(|h| h <= 23) && two(*m1, *m2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// What appending to, or verifying, a chain carries from one event to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The `seq` the next event must have.
    pub next_seq: u64,
    /// The `hash` of the last event, the next event's `prev_hash`.
    pub last_hash: String,
}

impl Default for ChainState {
    fn default() -> Self {
        ChainState { next_seq: 1, last_hash: GENESIS_HASH.to_owned() }
    }
}

impl ChainState {
    /// Numbers, links and seals `event` as the next link, then advances past it.
    pub fn append(&mut self, mut event: AuditEvent) -> Result<AuditEvent, AuditError> {
        let after = self.next_seq.checked_add(1).ok_or(AuditError::SeqOverflow)?;
        event.seq = self.next_seq;
        event.prev_hash = self.last_hash.clone();
        let event = event.sealed()?;
        self.next_seq = after;
        self.last_hash = event.hash.clone();
        Ok(event)
    }
}

/// The verdict on a run of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every line is a sound link; `last` continues the chain.
    Ok {
        /// How many events were checked.
        events: u64,
        /// The state after the last event (the start state if there were none).
        last: ChainState,
    },
    /// The first line that is not a sound link.
    Broken {
        /// The seq expected at that line.
        seq: u64,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks that `lines` continue the chain from `start` (genesis if `None`), skipping empty lines.
pub fn verify<'a>(lines: impl Iterator<Item = &'a str>, start: Option<ChainState>) -> Verification {
    let mut state = start.unwrap_or_default();
    let mut events = 0;
    for (index, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let broken = |reason: String| Verification::Broken { seq: state.next_seq, line: index + 1, reason };
        let event = match AuditEvent::parse_line(line) {
            Ok(event) => event,
            Err(err) => return broken(format!("unreadable event: {err}")),
        };
        if event.seq != state.next_seq {
            return broken(format!("expected seq {}, found {}", state.next_seq, event.seq));
        }
        if event.prev_hash != state.last_hash {
            return broken("prev_hash does not match the previous event's hash".into());
        }
        if event.compute_hash() != event.hash {
            return broken("hash does not match the event's content".into());
        }
        let Some(after) = state.next_seq.checked_add(1) else {
            return broken("sequence numbers exhausted".into());
        };
        state = ChainState { next_seq: after, last_hash: event.hash };
        events += 1;
    }
    Verification::Ok { events, last: state }
}

#[cfg(test)]
mod tests;
