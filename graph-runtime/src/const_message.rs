//! Messages built at compile time, for the checks `graph!` writes as
//! constants: a failed check panics during constant evaluation with a
//! message that holds numbers (a nested graph's width, the count of its
//! inputs), which a string literal cannot. Not a public API.

/// Text of at most 1024 bytes, built by `const fn`s.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    bytes: [u8; Message::CAPACITY],
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Self::new()
    }
}

impl Message {
    const CAPACITY: usize = 1024;

    /// An empty message.
    pub const fn new() -> Self {
        Message {
            bytes: [0; Message::CAPACITY],
            len: 0,
        }
    }

    /// Appends `s` (whole characters only, up to the capacity).
    pub const fn text(mut self, s: &str) -> Self {
        let b = s.as_bytes();
        let mut end = b.len();
        if self.len + end > Message::CAPACITY {
            end = Message::CAPACITY - self.len;
            // Back to the start of a character.
            while end > 0 && b[end] & 0b1100_0000 == 0b1000_0000 {
                end -= 1;
            }
        }
        let mut i = 0;
        while i < end {
            self.bytes[self.len] = b[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// Appends `n` in decimal.
    pub const fn num(self, mut n: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut k = digits.len();
        loop {
            k -= 1;
            digits[k] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut out = self;
        while k < digits.len() && out.len < Message::CAPACITY {
            out.bytes[out.len] = digits[k];
            out.len += 1;
            k += 1;
        }
        out
    }

    /// Appends `n` in decimal, with its sign.
    pub const fn int(self, n: i128) -> Self {
        let out = if n < 0 { self.text("-") } else { self };
        let m = n.unsigned_abs();
        if m > usize::MAX as u128 {
            return out.text("a number beyond usize");
        }
        out.num(m as usize)
    }

    /// Appends the names as a list: `` `x`, `h` ``.
    pub const fn names(self, names: &[&str]) -> Self {
        let mut out = self;
        let mut i = 0;
        while i < names.len() {
            if i > 0 {
                out = out.text(", ");
            }
            out = out.text("`").text(names[i]).text("`");
            i += 1;
        }
        out
    }

    /// The text.
    pub const fn as_str(&self) -> &str {
        // SAFETY: only whole UTF-8 characters of `&str`s and ASCII digits
        // were copied in, and `len` bytes of them are initialised.
        unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(self.bytes.as_ptr(), self.len)) }
    }
}

/// A nested graph's inputs (or outputs), listed: `` `x`, `h` ``.
pub const fn names_in(spec: &crate::spec::GraphSpec, outputs: bool) -> Message {
    let mut out = Message::new();
    let n = if outputs {
        spec.outputs.len()
    } else {
        spec.inputs.len()
    };
    let mut i = 0;
    while i < n {
        if i > 0 {
            out = out.text(", ");
        }
        let name = if outputs {
            spec.outputs[i].name
        } else {
            spec.inputs[i].name
        };
        out = out.text("`").text(name).text("`");
        i += 1;
    }
    out
}

/// `widths[i]`, or 0 past the end (a count check reports that).
pub const fn width_at(widths: &[usize], i: usize) -> usize {
    if i < widths.len() {
        widths[i]
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_text_numbers_and_lists_and_stops_at_whole_characters() {
        const M: Message = Message::new()
            .text("width ")
            .num(0)
            .text(", ")
            .num(1234567)
            .text(" ")
            .names(&["x", "ﬁ"]);
        assert_eq!(M.as_str(), "width 0, 1234567 `x`, `ﬁ`");
        assert_eq!(Message::new().num(usize::MAX).as_str(), usize::MAX.to_string());
        let long = "é".repeat(600); // 1200 bytes
        let m = Message::new().text("a").text(&long);
        assert_eq!(m.as_str().len(), 1023, "whole characters: 1 + 511 × 2");
        assert!(m.as_str().ends_with('é'));
        assert_eq!(Message::new().int(-4).int(5).as_str(), "-45");
        assert_eq!(width_at(&[3, 4], 1), 4);
        assert_eq!(width_at(&[3, 4], 2), 0);
    }
}
