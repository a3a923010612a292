//! portcullis wire formats: pure data and functions over bytes, no I/O.
#![forbid(unsafe_code)]

pub mod asciicast;
pub mod audit;
pub mod labels;
pub mod name;
pub mod proxy_header;
pub mod sftp;
pub mod sniff;
pub mod totp;
pub mod tunnel;
pub mod web_terminal;
