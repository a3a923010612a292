//! The portcullis gateway as a library: one port, the SSH front, the web, the admin socket.
#![deny(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod background;
pub mod config;
pub mod datadir;
pub mod file_transfer;
pub mod gateway;
pub mod listen;
pub mod node;
pub mod policy;
pub mod recording;
pub mod secret;
pub mod sessions;
pub mod shutdown;
pub mod ssh;
pub mod store;
pub mod tls;
pub mod tunnel;
pub mod web;

pub use config::Config;
pub use gateway::Gateway;
