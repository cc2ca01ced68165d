//! A minimal protobuf encoder: varints, fixed-width and length-delimited fields, nested
//! messages with their length fixed up after they are written.

/// Wire type of varint fields.
pub const WIRE_VARINT: u8 = 0;
/// Wire type of 64-bit fixed-width fields (`fixed64`, `double`).
pub const WIRE_I64: u8 = 1;
/// Wire type of length-delimited fields (strings, bytes, messages).
pub const WIRE_LEN: u8 = 2;

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A message being encoded into a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct ProtoWriter {
    buf: Vec<u8>,
}

impl ProtoWriter {
    /// An empty writer.
    pub fn new() -> Self {
        ProtoWriter::default()
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the writer, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn key(&mut self, field: u32, wire: u8) {
        push_varint(&mut self.buf, (u64::from(field) << 3) | u64::from(wire));
    }

    /// A `uint32`/`uint64`/enum field.
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, WIRE_VARINT);
        push_varint(&mut self.buf, v);
        self
    }

    /// An `int32`/`int64` field (two's complement: a negative value takes ten bytes).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.uint(field, v as u64)
    }

    /// A `bool` field.
    pub fn boolean(&mut self, field: u32, v: bool) -> &mut Self {
        self.uint(field, u64::from(v))
    }

    /// A `fixed64` field.
    pub fn fixed64(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, WIRE_I64);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `double` field.
    pub fn double(&mut self, field: u32, v: f64) -> &mut Self {
        self.fixed64(field, v.to_bits())
    }

    /// A `bytes` field.
    pub fn bytes_field(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, WIRE_LEN);
        push_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// A `string` field.
    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes_field(field, v.as_bytes())
    }

    /// Appends fields already encoded (by another writer).
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(encoded);
        self
    }

    /// A nested message field whose body `body` writes. One byte is reserved for its
    /// length; a body of 128 bytes or more moves over to make room for a longer one.
    pub fn message(&mut self, field: u32, body: impl FnOnce(&mut Self)) -> &mut Self {
        self.key(field, WIRE_LEN);
        let at = self.buf.len();
        self.buf.push(0);
        body(self);
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            push_varint(&mut prefix, len as u64);
            self.buf.splice(at..at + 1, prefix);
        }
        self
    }
}
