//! portcullis wire formats: pure data and functions over bytes, no I/O.
#![forbid(unsafe_code)]

pub mod audit;
pub mod proxy_header;
pub mod sniff;
