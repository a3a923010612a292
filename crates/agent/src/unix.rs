//! The few system calls std does not wrap: whose process this is, dropping to a login's
//! credentials between fork and exec, and signals to a child's process group.
//!
//! This is the crate's one exception to `deny(unsafe_code)`: `pre_exec` is unsafe because
//! its closure runs in the forked child, where only async-signal-safe calls are allowed.
//! The closures here call only `setsid`, `setgroups`, `setgid`, `setuid` and `chdir` on
//! memory prepared before the fork, and allocate nothing.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;

/// The credentials a session's processes run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (the primary one included).
    pub groups: Vec<u32>,
}

/// The effective user id of the agent.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Runs `command` (a PTY command: pty-process makes it a session leader first) as `credentials`
/// in `home` (falling back to `/`).
pub fn prepare_pty(
    command: pty_process::Command,
    credentials: Option<Credentials>,
    home: CString,
) -> pty_process::Command {
    let groups: Vec<libc::gid_t> = credentials.iter().flat_map(|c| c.groups.iter().copied()).collect();
    // SAFETY: `enter` is async-signal-safe (see the module comment).
    unsafe { command.pre_exec(move || enter(credentials.as_ref(), &groups, &home)) }
}

/// Runs `command` (with pipes) in a new session, as `credentials`, in `home` (falling back to `/`).
pub fn prepare_pipes(command: &mut tokio::process::Command, credentials: Option<Credentials>, home: CString) {
    let groups: Vec<libc::gid_t> = credentials.iter().flat_map(|c| c.groups.iter().copied()).collect();
    // SAFETY: setsid and `enter` are async-signal-safe (see the module comment).
    unsafe {
        command.pre_exec(move || {
            // Its own session: detached from the agent's terminal, and one process group to signal.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            enter(credentials.as_ref(), &groups, &home)
        });
    }
}

/// In the forked child: supplementary groups, group, then user (the order that can still
/// drop privileges), then the home directory as the user.
fn enter(credentials: Option<&Credentials>, groups: &[libc::gid_t], home: &CString) -> io::Result<()> {
    if let Some(credentials) = credentials {
        // SAFETY: `groups` outlives the call and its length is passed with it.
        if unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain system calls on integers.
        if unsafe { libc::setgid(credentials.gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::setuid(credentials.uid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: both strings are NUL-terminated and outlive the calls.
    if unsafe { libc::chdir(home.as_ptr()) } != 0 {
        unsafe { libc::chdir(c"/".as_ptr()) };
    }
    Ok(())
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill takes plain integers; a positive pid names one process.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `signal` to the process group `pgid` (a session leader's pid).
pub fn signal_group(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pgid <= 1 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: a negative pid names a process group; pgid > 1 never means "every process".
    if unsafe { libc::kill(-pgid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
