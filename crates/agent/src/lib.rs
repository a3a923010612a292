//! The portcullis node agent as a library: it dials out to the gateway (directly or through
//! an HTTP CONNECT proxy), joins once with a token, then keeps a TLS tunnel up in which the
//! gateway runs SSH to it, one end-to-end SSH connection per session.
//!
//! - [`dial`], [`proxy`], [`pin`]: TCP, CONNECT, pinned TLS with ALPN `portcullis-agent/1`
//! - [`join`], [`identity`]: the join exchange and what it leaves in the data dir
//! - [`tunnel`]: the outer SSH server on the TLS stream; [`sessions`]: the inner one per session
//! - [`login`], [`account`]: who may log in; [`process`], [`relay`]: what runs and its I/O
//! - [`inventory`]: host and GPU labels; [`backoff`]: reconnect delays
#![deny(unsafe_code)]

pub mod account;
mod agent;
pub mod backoff;
pub mod dial;
pub mod identity;
pub mod inventory;
pub mod join;
pub mod login;
pub mod pin;
pub mod process;
pub mod proxy;
pub mod relay;
pub mod sessions;
pub mod tunnel;
mod unix;

pub use agent::{AgentConfig, DEFAULT_RECONNECT_MAX, default_name, run, valid_name};
pub use dial::ProxySetting;
pub use unix::Credentials;
