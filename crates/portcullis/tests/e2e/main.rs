//! End-to-end tests: the real `portcullis` binary, the stock OpenSSH client and sshd.
//! One test binary (ripgrep style); every server listens on 127.0.0.1, port 0.

mod support;

mod admin;
mod admin_web;
mod agent;
mod agent_fleet;
mod agent_inventory;
mod agent_netns;
mod agent_refusals;
mod browser;
mod doctor;
mod harness;
mod hostile;
mod rbac;
mod recording;
mod recordings_web;
mod relay;
mod secrets;
mod shared_port;
mod web;
