//! The protobuf wire format: varints, fixed-width numbers, length-delimited bytes, field keys.

/// A wire type (the low three bits of a field key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

impl WireType {
    fn from_bits(bits: u64) -> Option<Self> {
        Some(match bits {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "64-bit",
            WireType::Len => "length-delimited",
            WireType::StartGroup => "start-group",
            WireType::EndGroup => "end-group",
            WireType::Fixed32 => "32-bit",
        }
    }
}

/// Reads protobuf wire data from a byte slice; errors are plain descriptions.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err("truncated varint".into());
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "truncated data: {n} bytes wanted, {} left",
                    self.buf.len() - self.pos
                )
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn fixed32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-delimited value (string, bytes, message, packed repeated field).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| format!("length {len} too large"))?;
        self.take(len)
    }

    /// The next field key: (field number, wire type), or `None` at the end.
    pub(crate) fn key(&mut self) -> Result<Option<(u32, WireType)>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire =
            WireType::from_bits(key & 7).ok_or_else(|| format!("invalid wire type {}", key & 7))?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(format!("invalid field number {number}"));
        }
        Ok(Some((number as u32, wire)))
    }

    /// Skips a value of an unknown field.
    pub(crate) fn skip(&mut self, wire: WireType) -> Result<(), String> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::StartGroup | WireType::EndGroup => {
                Err("protobuf groups are not supported".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0]).varint(), Ok(0));
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&minus_one).varint(), Ok(u64::MAX));
        assert!(Reader::new(&[0x80]).varint().is_err());
        let too_long = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&too_long).varint().is_err());
    }

    #[test]
    fn keys_and_lengths() {
        let mut r = Reader::new(&[0x0a, 0x02, b'h', b'i', 0x10, 0x01]);
        assert_eq!(r.key(), Ok(Some((1, WireType::Len))));
        assert_eq!(r.bytes(), Ok(&b"hi"[..]));
        assert_eq!(r.key(), Ok(Some((2, WireType::Varint))));
        r.skip(WireType::Varint).unwrap();
        assert_eq!(r.key(), Ok(None));
        assert!(Reader::new(&[0x0a, 0x05, b'h']).bytes().is_err());
        assert!(Reader::new(&[0x07]).key().is_err());
        assert!(Reader::new(&[0x00]).key().is_err());
    }
}
