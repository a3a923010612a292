//! Integration tests of the agent: the tunnel and session server driven by a russh client
//! (as the gateway drives them), and the whole agent against a stand-in gateway.

mod run;
mod sessions;
mod support;
