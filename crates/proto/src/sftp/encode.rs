//! Test encoders: SFTP v3 packets as bytes.

use super::frame::*;
pub(super) use super::packet::Packet;

pub(super) fn init() -> Vec<u8> {
    Packet::new(INIT).u32(3).build()
}

pub(super) fn version() -> Vec<u8> {
    Packet::new(VERSION).u32(3).string("posix-rename@openssh.com").string("1").build()
}

pub(super) fn open(id: u32, path: impl AsRef<[u8]>, pflags: u32) -> Vec<u8> {
    Packet::new(OPEN).u32(id).string(path).u32(pflags).u32(0).build()
}

pub(super) fn close(id: u32, handle: &str) -> Vec<u8> {
    Packet::new(CLOSE).u32(id).string(handle).build()
}

pub(super) fn read(id: u32, handle: &str, offset: u64, len: u32) -> Vec<u8> {
    Packet::new(READ).u32(id).string(handle).u64(offset).u32(len).build()
}

pub(super) fn write(id: u32, handle: &str, offset: u64, data: &[u8]) -> Vec<u8> {
    Packet::new(WRITE).u32(id).string(handle).u64(offset).string(data).build()
}

pub(super) fn remove(id: u32, path: &str) -> Vec<u8> {
    Packet::new(REMOVE).u32(id).string(path).build()
}

pub(super) fn rename(id: u32, from: &str, to: &str) -> Vec<u8> {
    Packet::new(RENAME).u32(id).string(from).string(to).build()
}

pub(super) fn mkdir(id: u32, path: &str) -> Vec<u8> {
    Packet::new(MKDIR).u32(id).string(path).u32(0).build()
}

pub(super) fn rmdir(id: u32, path: &str) -> Vec<u8> {
    Packet::new(RMDIR).u32(id).string(path).build()
}

/// SETSTAT setting only the permissions.
pub(super) fn chmod(id: u32, path: &str, mode: u32) -> Vec<u8> {
    Packet::new(SETSTAT).u32(id).string(path).u32(0x4).u32(mode).build()
}

/// FSETSTAT setting only the permissions.
pub(super) fn fchmod(id: u32, handle: &str, mode: u32) -> Vec<u8> {
    Packet::new(FSETSTAT).u32(id).string(handle).u32(0x4).u32(mode).build()
}

/// An EXTENDED request whose data is two strings.
pub(super) fn extended(id: u32, name: &str, first: &str, second: &str) -> Vec<u8> {
    Packet::new(EXTENDED).u32(id).string(name).string(first).string(second).build()
}

pub(super) fn status(id: u32, code: u32) -> Vec<u8> {
    Packet::new(STATUS).u32(id).u32(code).string("message").string("").build()
}

pub(super) fn handle(id: u32, handle: &str) -> Vec<u8> {
    Packet::new(HANDLE).u32(id).string(handle).build()
}

pub(super) fn data(id: u32, data: &[u8]) -> Vec<u8> {
    Packet::new(DATA).u32(id).string(data).build()
}
