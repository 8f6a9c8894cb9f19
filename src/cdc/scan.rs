//! The DMS decoder's fast path: one hand-written pass over the record's text that builds the
//! same [`Envelope`] (and [`RawRow`]s) serde_json would, for records shaped as DMS writes them.
//!
//! Invariants:
//! - It accepts a strict subset of what the general (serde_json) path accepts, and for what it
//!   accepts it builds exactly what that path builds: the same raw value text, borrowed from
//!   the input, in the same order. Everything after the syntax is shared (`dms::from_envelope`),
//!   so both paths agree on every value and every error.
//! - Anything else gives up (`None`) and the general path reads the record and words the error:
//!   invalid JSON, a key with escapes, a repeated key where serde would refuse one, a control
//!   record, a `data` or `metadata` that is not an object, nesting deeper than [`MAX_DEPTH`], or
//!   a top-level value serde would parse further (a number, an escaped string).
//! - Never panics: every index is checked.
//!
//! The property test `dms::tests::prop::fast_path_agrees_with_the_general_path` holds it to this.

use std::borrow::Cow;

use super::dms::{Envelope, Meta, META_FIELDS};
use super::json::{RawRow, Shape};

/// Deeper nesting is left to the general path.
const MAX_DEPTH: usize = 64;

/// A DMS record's envelope, or `None` when the general path must read it (see the module
/// doc). `Some` implies a JSON object with an object `metadata`.
pub(super) fn envelope(text: &str) -> Option<Envelope<'_>> {
    let mut s = Scanner::new(text);
    let mut env = Envelope::default();
    s.open(b'{')?;
    if !s.close(b'}')? {
        loop {
            let key = s.key()?;
            match key {
                "data" => {
                    if env.data.is_some() || s.peek()? != b'{' {
                        return None;
                    }
                    env.data = Some(Shape::Obj(s.row()?));
                }
                "metadata" => {
                    if env.metadata.is_some() || s.peek()? != b'{' {
                        return None;
                    }
                    env.metadata = Some(Shape::Obj(s.meta()?));
                }
                "control" => return None,
                _ => match s.peek()? {
                    b'{' => {
                        let row = s.row()?;
                        env.offer_before_image(Cow::Borrowed(key), row);
                    }
                    // serde reads these as numbers or unescaped strings, with checks of its own.
                    b'-' | b'0'..=b'9' => return None,
                    b'"' => {
                        if s.value(1)?.contains('\\') {
                            return None;
                        }
                    }
                    _ => {
                        s.value(1)?;
                    }
                },
            }
            if s.next_or_close(b'}')? {
                break;
            }
        }
    }
    env.metadata.as_ref()?;
    s.end().then_some(env)
}

/// One row object (`dms::row_from_json`), or `None` for the general path.
pub(super) fn row(text: &str) -> Option<RawRow<'_, str>> {
    let mut s = Scanner::new(text);
    let row = s.row()?;
    s.end().then_some(row)
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.at).copied()
    }

    /// Consume `c` (after whitespace) or give up.
    fn open(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// Right after an opening bracket: consume the closing one if the container is empty.
    fn close(&mut self, c: u8) -> Option<bool> {
        let empty = self.peek()? == c;
        if empty {
            self.at += 1;
        }
        Some(empty)
    }

    /// After a member: `,` (another follows: false) or the closing bracket (true).
    fn next_or_close(&mut self, c: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(false)
            }
            b if b == c => {
                self.at += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// Only whitespace left.
    fn end(&mut self) -> bool {
        self.skip_ws();
        self.at == self.text.len()
    }

    /// An object key without escapes, and its `:`.
    fn key(&mut self) -> Option<&'a str> {
        let raw = self.string()?;
        if raw.contains('\\') {
            return None;
        }
        self.open(b':')?;
        raw.get(1..raw.len() - 1)
    }

    /// A string's raw text, quotes included, validated as serde_json validates one it skips:
    /// no control characters, only JSON's escapes.
    fn string(&mut self) -> Option<&'a str> {
        self.open(b'"')?;
        let start = self.at - 1;
        let b = self.bytes();
        loop {
            match *b.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return self.text.get(start..self.at);
                }
                b'\\' => match *b.get(self.at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                    b'u' => {
                        let hex = b.get(self.at + 2..self.at + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.at += 6;
                    }
                    _ => return None,
                },
                0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
    }

    /// A number's raw text: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let start = self.at;
        let b = self.bytes();
        let digits = |at: &mut usize| {
            let from = *at;
            while b.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at > from
        };
        if b.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match b.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                digits(&mut self.at);
            }
            _ => return None,
        }
        if b.get(self.at) == Some(&b'.') {
            self.at += 1;
            if !digits(&mut self.at) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = b.get(self.at) {
                self.at += 1;
            }
            if !digits(&mut self.at) {
                return None;
            }
        }
        // `01`, `1.2.3`, `1x`: whatever follows must end the value, which the caller checks
        // (`,`, `}` or `]` after whitespace), except for a digit after a leading `0`.
        if b.get(self.at).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        self.text.get(start..self.at)
    }

    fn literal(&mut self, word: &str) -> Option<&'a str> {
        self.skip_ws();
        let text = self.text.get(self.at..self.at + word.len())?;
        if text != word {
            return None;
        }
        self.at += word.len();
        Some(text)
    }

    /// Any JSON value's raw text; `depth` counts the containers it is in.
    fn value(&mut self, depth: usize) -> Option<&'a str> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' | b'[' => {
                let start = self.at;
                self.container(depth + 1)?;
                self.text.get(start..self.at)
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(),
        }
    }

    /// An object or array, skipped; keys may have escapes here (nothing reads them).
    fn container(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let close = if self.peek()? == b'{' { b'}' } else { b']' };
        self.at += 1;
        if self.close(close)? {
            return Some(());
        }
        loop {
            if close == b'}' {
                self.string()?;
                self.open(b':')?;
            }
            self.value(depth)?;
            if self.next_or_close(close)? {
                return Some(());
            }
        }
    }

    /// A row object: column names (no escapes) and raw values, repeats kept aside as serde's
    /// `RawRow` keeps them.
    fn row(&mut self) -> Option<RawRow<'a, str>> {
        self.open(b'{')?;
        let mut row = RawRow::with_capacity(16);
        if self.close(b'}')? {
            return Some(row);
        }
        loop {
            let name = self.key()?;
            let value = self.value(1)?;
            row.push(Cow::Borrowed(name), value);
            if self.next_or_close(b'}')? {
                return Some(row);
            }
        }
    }

    /// The `metadata` object: the fields `Meta` reads (`null` is absent, a repeat gives up as
    /// serde refuses it), the rest skipped.
    fn meta(&mut self) -> Option<Meta<'a>> {
        self.open(b'{')?;
        let mut meta = Meta::default();
        let mut seen = [false; META_FIELDS.len()];
        if self.close(b'}')? {
            return Some(meta);
        }
        loop {
            let key = self.key()?;
            let value = self.value(1)?;
            if let Some(i) = META_FIELDS.iter().position(|f| *f == key) {
                if std::mem::replace(&mut seen[i], true) {
                    return None;
                }
                *meta.field(i)? = (value != "null").then_some(value);
            }
            if self.next_or_close(b'}')? {
                return Some(meta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Option<Vec<(String, String)>> {
        let row = row(text)?;
        assert!(row.duplicate.is_none());
        Some(
            row.columns
                .into_iter()
                .map(|(n, v)| (n.into_owned(), v.to_owned()))
                .collect(),
        )
    }

    #[test]
    fn rows_keep_raw_text() {
        assert_eq!(
            values(
                r#" { "a" : -1.5e+3 , "b":"x\"y\u00e9", "c":[1,{"k":null}],"d":true,"e":null} "#
            ),
            Some(vec![
                ("a".into(), "-1.5e+3".into()),
                ("b".into(), r#""x\"y\u00e9""#.into()),
                ("c".into(), r#"[1,{"k":null}]"#.into()),
                ("d".into(), "true".into()),
                ("e".into(), "null".into()),
            ])
        );
        assert_eq!(values("{}"), Some(vec![]));
    }

    #[test]
    fn gives_up_on_what_serde_refuses_or_reads_differently() {
        for text in [
            "",
            "{",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":-}",
            "{\"a\":+1}",
            "{\"a\":tru}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12G4\"}",
            "{\"a\":[1,]}",
            "{\"a\":1} x",
            "{\"\\u0061\":1}",
            "{'a':1}",
        ] {
            assert!(row(text).is_none(), "{text:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        assert!(row(&deep).is_none());
    }
}
