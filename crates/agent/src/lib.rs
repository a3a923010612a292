//! The portcullis node agent (dial-out tunnel, SSH server for sessions): arrives with the agents issue.
#![forbid(unsafe_code)]
