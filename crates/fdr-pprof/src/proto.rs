//! A small protobuf writer: the wire types pprof's `profile.proto` uses (varints, packed
//! varints, length-delimited strings and messages), proto3 style (a zero scalar is not
//! written). Nested messages are written into a buffer of their own and copied behind their
//! length.

/// Wire type of a varint field.
const VARINT: u64 = 0;
/// Wire type of a length-delimited field.
const LEN: u64 = 2;

/// One message being written.
#[derive(Debug, Default)]
pub(crate) struct Msg {
    buf: Vec<u8>,
}

fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Msg {
    pub(crate) fn new() -> Msg {
        Msg::default()
    }

    fn key(&mut self, field: u32, wire: u64) {
        push_varint(&mut self.buf, (u64::from(field) << 3) | wire);
    }

    /// A `uint64` (or `bool`, or an id) field; nothing if zero.
    pub(crate) fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            push_varint(&mut self.buf, v);
        }
    }

    /// An `int64` field (two's complement, as protobuf writes it); nothing if zero.
    pub(crate) fn int(&mut self, field: u32, v: i64) {
        self.uint(field, v as u64);
    }

    /// A `bool` field; nothing if false.
    pub(crate) fn bool(&mut self, field: u32, v: bool) {
        self.uint(field, u64::from(v));
    }

    /// A length-delimited field, written even when empty (a repeated string's empty
    /// entry counts).
    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        push_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A packed repeated varint field; nothing if empty.
    pub(crate) fn packed(&mut self, field: u32, vs: impl IntoIterator<Item = u64>) {
        let mut body = Vec::new();
        for v in vs {
            push_varint(&mut body, v);
        }
        if !body.is_empty() {
            self.bytes(field, &body);
        }
    }

    /// A nested message field.
    pub(crate) fn message(&mut self, field: u32, m: &Msg) {
        self.bytes(field, &m.buf);
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_protobuf_wire_format() {
        let mut m = Msg::new();
        m.uint(1, 150);
        m.uint(2, 0);
        m.int(3, -1);
        m.bytes(4, b"");
        m.packed(5, [1, 300]);
        let mut inner = Msg::new();
        inner.bool(1, true);
        m.message(6, &inner);
        assert_eq!(
            m.into_bytes(),
            [
                0x08, 0x96, 0x01, // 1: 150
                0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // 3: -1
                0x22, 0x00, // 4: ""
                0x2a, 0x03, 0x01, 0xac, 0x02, // 5: [1, 300]
                0x32, 0x02, 0x08, 0x01, // 6: {1: true}
            ]
        );
    }
}
