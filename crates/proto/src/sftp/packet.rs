//! SFTP v3 packets as bytes: `uint32 length, byte type, body`.

/// A packet under construction: its type byte, then its body.
pub(crate) struct Packet(Vec<u8>);

impl Packet {
    pub(crate) fn new(kind: u8) -> Self {
        Self(vec![kind])
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn string(mut self, value: impl AsRef<[u8]>) -> Self {
        let value = value.as_ref();
        self = self.u32(value.len() as u32);
        self.0.extend_from_slice(value);
        self
    }

    #[cfg(test)]
    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// The packet with its length prefix.
    pub(crate) fn build(self) -> Vec<u8> {
        let mut out = (self.0.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&self.0);
        out
    }
}
