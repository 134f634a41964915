//! The canonical text of a JSON value: one byte string for every way of writing the same value.
//!
//! It is computed from JSON *text* — what the writer sends to PostgreSQL, or what `jsonb` gives back —
//! never from a parsed `f64`, so it cannot drift between the two: `jsonb` keeps numbers as exact
//! decimals and strings as their code points, and this form keeps exactly that information.
//!
//! ```text
//! object   {"k":v,…}   members sorted by key, keys compared code point by code point
//!                      (the same order as their UTF-8 bytes); a key given twice is an error
//! array    [v,…]       in order
//! string   "…"         `"` → \"  `\` → \\  U+0008 → \b  U+0009 → \t  U+000A → \n  U+000C → \f
//!                      U+000D → \r  other U+0000–U+001F → \u00xx (lower-case hex);
//!                      every other code point as itself, in UTF-8 (U+2028, `<`, emoji, …)
//! number               the exact decimal value in plain notation: `-` only when not zero; the
//!                      integer part without leading zeros (`0` when below one); a `.` and the
//!                      fraction only when there is one, without trailing zeros; no exponent
//!                      (1E+2 → 100, 1.50 → 1.5, -0.0 → 0, 1e-7 → 0.0000001)
//! literals             true false null
//! ```
//!
//! No whitespace anywhere. The input must be strict JSON (RFC 8259): anything else is an
//! [`Error`], as are lone surrogates, nesting deeper than [`MAX_DEPTH`] and numbers whose plain
//! notation would be longer than [`MAX_NUMBER_DIGITS`] (beyond what `jsonb` can store).

use std::fmt;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 1_000;

/// Most digits a number may have in plain notation: PostgreSQL's `numeric` holds up to 131,072
/// digits before the point and 16,383 after it, so nothing `jsonb` returns comes close.
pub const MAX_NUMBER_DIGITS: usize = 131_072 + 16_383;

/// Why a text has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the input.
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not canonicalisable JSON at byte {}: {}",
            self.at, self.reason
        )
    }
}

impl std::error::Error for Error {}

/// The canonical text of the JSON value in `text`.
pub fn canonicalize(text: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(text.len());
    canonicalize_into(text, &mut out)?;
    Ok(out)
}

/// Appends the canonical text of the JSON value in `text` to `out`.
pub fn canonicalize_into(text: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut parser = Parser {
        input: text.as_bytes(),
        at: 0,
    };
    parser.whitespace();
    parser.value(out, 0)?;
    parser.whitespace();
    if parser.at != parser.input.len() {
        return Err(parser.error("text after the value"));
    }
    Ok(())
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> Error {
        Error {
            at: self.at,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), Error> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        match self.peek() {
            Some(b'{') => self.object(out, depth + 1),
            Some(b'[') => self.array(out, depth + 1),
            Some(b'"') => {
                let s = self.string()?;
                write_string(&s, out);
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(b't') => self.literal(b"true", out),
            Some(b'f') => self.literal(b"false", out),
            Some(b'n') => self.literal(b"null", out),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end")),
        }
    }

    fn literal(&mut self, word: &'static [u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if self.input[self.at..].starts_with(word) {
            self.at += word.len();
            out.extend_from_slice(word);
            Ok(())
        } else {
            Err(self.error("expected true, false or null"))
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.at += 1;
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                self.whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a key"));
                }
                let key = self.string()?;
                self.whitespace();
                self.expect(b':', "expected `:`")?;
                self.whitespace();
                let mut value = Vec::new();
                self.value(&mut value, depth)?;
                members.push((key, value));
                self.whitespace();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `}`")),
                }
            }
        }
        // Rust orders strings by their UTF-8 bytes, which is code point order.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        if members.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(self.error("a key appears twice in one object"));
        }
        out.push(b'{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(key, out);
            out.push(b':');
            out.extend_from_slice(value);
        }
        out.push(b'}');
        Ok(())
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.at += 1;
        out.push(b'[');
        self.whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
        } else {
            let mut first = true;
            loop {
                if !first {
                    out.push(b',');
                }
                first = false;
                self.whitespace();
                self.value(out, depth)?;
                self.whitespace();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b']') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `]`")),
                }
            }
        }
        out.push(b']');
        Ok(())
    }

    /// A string's code points, escapes resolved.
    fn string(&mut self) -> Result<String, Error> {
        self.at += 1;
        let mut bytes = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            match byte {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated escape"))?;
                    self.at += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.error("unknown escape")),
                    };
                    let mut buffer = [0; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                0x00..=0x1f => return Err(self.error("unescaped control character in a string")),
                _ => {
                    bytes.push(byte);
                    self.at += 1;
                }
            }
        }
        // The input is a `&str`, and escapes add whole characters: always valid UTF-8.
        String::from_utf8(bytes).map_err(|_| self.error("invalid UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .input
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("short \\u escape"))?;
        let mut value = 0;
        for &d in digits {
            let nibble = char::from(d)
                .to_digit(16)
                .ok_or_else(|| self.error("bad hex digit in \\u escape"))?;
            value = value * 16 + nibble;
        }
        self.at += 4;
        Ok(value)
    }

    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.input[self.at..].starts_with(b"\\u") {
                    return Err(self.error("a high surrogate without its low surrogate"));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("a high surrogate without its low surrogate"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("a low surrogate on its own")),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.error("not a Unicode scalar value"))
    }

    fn digits(&mut self) -> &[u8] {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        &self.input[start..self.at]
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let integer = self.digits().to_vec();
        if integer.is_empty() {
            return Err(self.error("a number needs digits"));
        }
        if integer.len() > 1 && integer[0] == b'0' {
            return Err(self.error("a number may not start with 0"));
        }
        let mut fraction = Vec::new();
        if self.peek() == Some(b'.') {
            self.at += 1;
            fraction = self.digits().to_vec();
            if fraction.is_empty() {
                return Err(self.error("a fraction needs digits"));
            }
        }
        let mut exponent: i64 = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let exponent_negative = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let digits = self.digits();
            if digits.is_empty() {
                return Err(self.error("an exponent needs digits"));
            }
            // Saturates far beyond any representable number; range is checked below.
            let magnitude = digits.iter().fold(0i64, |n, d| {
                n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
            });
            exponent = if exponent_negative {
                -magnitude
            } else {
                magnitude
            };
        }
        write_decimal(negative, &integer, &fraction, exponent, out)
            .map_err(|reason| self.error(reason))
    }
}

/// Writes ±(integer.fraction × 10^exponent) in the canonical plain notation.
fn write_decimal(
    negative: bool,
    integer: &[u8],
    fraction: &[u8],
    exponent: i64,
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    // value = digits × 10^scale, digits without leading or trailing zeros.
    let mut digits: Vec<u8> = integer.iter().chain(fraction).copied().collect();
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    digits.drain(..leading);
    let trailing = digits.iter().rev().take_while(|&&d| d == b'0').count();
    digits.truncate(digits.len() - trailing);
    if digits.is_empty() {
        out.push(b'0');
        return Ok(());
    }
    let fraction_len = i64::try_from(fraction.len()).map_err(|_| "number too long")?;
    let trailing = i64::try_from(trailing).map_err(|_| "number too long")?;
    let scale = exponent
        .saturating_sub(fraction_len)
        .saturating_add(trailing);
    let len = i64::try_from(digits.len()).map_err(|_| "number too long")?;
    let plain_len = if scale >= 0 {
        len.saturating_add(scale)
    } else {
        len.max(scale.saturating_neg()).saturating_add(1)
    };
    if plain_len > i64::try_from(MAX_NUMBER_DIGITS).unwrap_or(i64::MAX) {
        return Err("number out of range");
    }
    if negative {
        out.push(b'-');
    }
    if scale >= 0 {
        out.extend_from_slice(&digits);
        out.extend(std::iter::repeat_n(
            b'0',
            usize::try_from(scale).unwrap_or(0),
        ));
    } else {
        let point = usize::try_from(scale.saturating_neg()).unwrap_or(0);
        if digits.len() > point {
            let (whole, part) = digits.split_at(digits.len() - point);
            out.extend_from_slice(whole);
            out.push(b'.');
            out.extend_from_slice(part);
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', point - digits.len()));
            out.extend_from_slice(&digits);
        }
    }
    Ok(())
}

/// Writes `s` as a canonical JSON string.
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if u32::from(c) < 0x20 => {
                let b = u8::try_from(u32::from(c)).unwrap_or(0);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            c => {
                let mut buffer = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn canon(text: &str) -> String {
        String::from_utf8(canonicalize(text).expect("canonical")).expect("utf-8")
    }

    #[test]
    fn numbers_are_exact_decimals_in_plain_notation() {
        for (input, expected) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("0e-99999999999", "0"),
            ("1E+2", "100"),
            ("100", "100"),
            ("1.50", "1.5"),
            ("1e21", "1000000000000000000000"),
            ("1e-7", "0.0000001"),
            ("0.0000001", "0.0000001"),
            ("-12.5e-3", "-0.0125"),
            ("123.456e1", "1234.56"),
            ("0.12371448056913803", "0.12371448056913803"),
            ("18446744073709551617", "18446744073709551617"),
            ("-9007199254740993", "-9007199254740993"),
            ("5e-324", &format!("0.{}5", "0".repeat(323))),
            ("0.10000000000000000001", "0.10000000000000000001"),
        ] {
            assert_eq!(canon(input), expected, "{input}");
        }
    }

    #[test]
    fn objects_are_sorted_by_code_point_and_strings_escaped_minimally() {
        assert_eq!(
            canon(r#" { "b" : [ 1 , 2.0 ] , "a" : { "é" : null, "z": true, "Z": false } } "#),
            r#"{"a":{"Z":false,"z":true,"é":null},"b":[1,2]}"#
        );
        assert_eq!(
            canon(r#""\u0041\/\u00e9\ud83d\ude00\u2028<>&\u0001\u001f\u007f\b\f\n\r\t\"\\""#),
            "\"A/é😀\u{2028}<>&\\u0001\\u001f\u{7f}\\b\\f\\n\\r\\t\\\"\\\\\""
        );
        // Code point order, not UTF-16 order: U+FB01 sorts before U+1F600.
        assert_eq!(canon(r#"{"😀":1,"ﬁ":2}"#), r#"{"ﬁ":2,"😀":1}"#);
    }

    #[test]
    fn what_is_not_strict_json_has_no_canonical_form() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "NaN",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\x41\"",
            "\"a\u{1}\"",
            "{\"a\":1,\"a\":2}",
            "1 2",
            "tru",
            "1e99999999999999",
        ] {
            assert!(canonicalize(bad).is_err(), "{bad:?} was accepted");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(canonicalize(&deep).is_err(), "too deep");
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(canon(&fine), fine);
    }

    /// `value` written another way: shuffled keys, whitespace, escapes and numbers in other notations.
    fn rewritten(value: &Value, seed: u64) -> String {
        let mut out = String::new();
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        write_rewritten(value, &mut next, &mut out);
        out
    }

    fn write_rewritten(value: &Value, next: &mut impl FnMut() -> u64, out: &mut String) {
        let space = |n: u64| [" ", "", "\n", "\t ", "\r\n"][(n % 5) as usize];
        match value {
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by_key(|_| next());
                out.push('{');
                for (i, (k, v)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(space(next()));
                    write_escaped(k, next, out);
                    out.push_str(space(next()));
                    out.push(':');
                    write_rewritten(v, next, out);
                }
                out.push_str(space(next()));
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(space(next()));
                    write_rewritten(v, next, out);
                }
                out.push(']');
            }
            Value::String(s) => write_escaped(s, next, out),
            Value::Number(n) => out.push_str(&renotated(&n.to_string(), next())),
            other => out.push_str(&other.to_string()),
        }
    }

    /// Escapes every character one of the ways JSON allows.
    fn write_escaped(s: &str, next: &mut impl FnMut() -> u64, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            let must = c == '"' || c == '\\' || u32::from(c) < 0x20;
            if must || next().is_multiple_of(3) {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            } else {
                out.push(c);
            }
        }
        out.push('"');
    }

    /// The same decimal value in another notation: the point moved, zeros added, an exponent.
    fn renotated(number: &str, r: u64) -> String {
        let (sign, rest) = number.strip_prefix('-').map_or(("", number), |r| ("-", r));
        let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i64>().expect("exponent")),
            None => (rest, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{whole}{fraction}");
        let scale = exponent - fraction.len() as i64;
        // digits × 10^scale written as 0.<zeros><digits><zeros> × 10^e.
        let zeros_before = (r % 3) as usize;
        let zeros_after = ((r >> 2) % 3) as usize;
        let mantissa = format!(
            "0.{}{digits}{}",
            "0".repeat(zeros_before),
            "0".repeat(zeros_after)
        );
        let e = scale + (digits.len() + zeros_before + zeros_after) as i64 - zeros_after as i64;
        let marker = if r & 16 == 0 { "e" } else { "E" };
        let plus = if e >= 0 && r & 32 == 0 { "+" } else { "" };
        format!("{sign}{mantissa}{marker}{plus}{e}")
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 4_000,
            rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6277_6576),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_way_of_writing_a_value_has_one_canonical_form(value in super::super::arbitrary::any_value(), seed in any::<u64>()) {
            let written = serde_json::to_string(&value).expect("serialise");
            let canonical = canonicalize(&written).expect("serde_json writes strict JSON");
            prop_assert_eq!(canonicalize(&rewritten(&value, seed)).expect("rewritten"), canonical.clone());
            // Idempotent, and still the same value.
            let text = String::from_utf8(canonical.clone()).expect("utf-8");
            prop_assert_eq!(canonicalize(&text).expect("again"), canonical);
            let reparsed: Value = serde_json::from_str(&text).expect("canonical text is JSON");
            prop_assert!(same_value(&reparsed, &value), "{} vs {}", reparsed, value);
        }
    }

    /// Equal as JSON values, numbers compared as the f64 they denote (`-0` and `0` alike).
    fn same_value(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn a_fixed_example_from_the_event_catalog() {
        let value =
            json!({"alignment": 0.12371448056913803, "count": 3, "ratio": 3.0, "tiny": 1e-7});
        assert_eq!(
            canon(&serde_json::to_string(&value).expect("serialise")),
            r#"{"alignment":0.12371448056913803,"count":3,"ratio":3,"tiny":0.0000001}"#
        );
    }
}
