//! A strict JSON reader for body values (RFC 8259 syntax), where serde_json's own parser loses
//! what the canonical form depends on.
//!
//! - The number's *syntax* decides its kind: no fraction and no exponent is an integer (so `-0`
//!   is the integer 0), anything else a float. serde_json turns `-0` into the float −0.0 and an
//!   integer past 2^64 into a float, so the same text would give different bytes here and in
//!   another language.
//! - Floats are rounded correctly (Rust's `str::parse::<f64>`), not with serde_json's default
//!   fast path, which can be one unit in the last place off.
//! - Duplicate object keys are errors at any depth, and every error names the value's path
//!   (`$.a.b[2]`), so an API can point at the field.
//!
//! Strings are handed to serde_json once their extent is known, for its escape handling.

use serde_json::{Map, Number, Value};

use super::{push_key, ValueError, MAX_INTEGER, MIN_INTEGER};

/// Parses `text` as one JSON value with at most `max_depth` nested arrays and objects.
pub(super) fn parse(text: &str, max_depth: usize) -> Result<Value, ValueError> {
    let mut reader = Reader {
        text,
        position: 0,
        path: String::from("$"),
        max_depth,
    };
    reader.skip_whitespace();
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.position < text.len() {
        return Err(reader.syntax("unexpected text after the JSON value"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a str,
    position: usize,
    /// Path of the value being read, for error messages.
    path: String,
    max_depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.position += 1;
        }
    }

    /// A syntax error at the current position, as line and column (1-based, in characters).
    fn syntax(&self, problem: &'static str) -> ValueError {
        let before = self.text.get(..self.position).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map_or(0, |last| last.chars().count())
            + 1;
        ValueError::Syntax {
            line,
            column,
            problem,
        }
    }

    fn expect(&mut self, byte: u8, problem: &'static str) -> Result<(), ValueError> {
        if self.peek() == Some(byte) {
            self.position += 1;
            Ok(())
        } else {
            Err(self.syntax(problem))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ValueError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(_) => Err(self.syntax("expected a JSON value")),
            None => Err(self.syntax("the text ends where a JSON value was expected")),
        }
    }

    fn literal(&mut self, word: &'static str, value: Value) -> Result<Value, ValueError> {
        if self
            .text
            .get(self.position..)
            .is_some_and(|rest| rest.starts_with(word))
        {
            self.position += word.len();
            Ok(value)
        } else {
            Err(self.syntax("expected a JSON value"))
        }
    }

    fn enter(&self, depth: usize) -> Result<(), ValueError> {
        if depth > self.max_depth {
            return Err(ValueError::TooDeep {
                path: self.path.clone(),
                max: self.max_depth,
            });
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<Value, ValueError> {
        self.enter(depth)?;
        self.position += 1;
        self.skip_whitespace();
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.position += 1;
            return Ok(Value::Array(items));
        }
        loop {
            let len = self.path.len();
            self.path.push_str(&format!("[{}]", items.len()));
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.path.truncate(len);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.position += 1,
                Some(b']') => {
                    self.position += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.syntax("expected ',' or ']' in an array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ValueError> {
        self.enter(depth)?;
        self.position += 1;
        self.skip_whitespace();
        let mut map = Map::new();
        if self.peek() == Some(b'}') {
            self.position += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string key in an object"));
            }
            let key = self.string()?;
            if map.contains_key(&key) {
                return Err(ValueError::DuplicateKey {
                    path: self.path.clone(),
                    key,
                });
            }
            self.skip_whitespace();
            self.expect(b':', "expected ':' after an object key")?;
            self.skip_whitespace();
            let len = self.path.len();
            push_key(&mut self.path, &key);
            let value = self.value(depth)?;
            self.path.truncate(len);
            map.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.position += 1,
                Some(b'}') => {
                    self.position += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.syntax("expected ',' or '}' in an object")),
            }
        }
    }

    /// A string token: find its closing quote, then let serde_json decode the escapes.
    fn string(&mut self) -> Result<String, ValueError> {
        let start = self.position;
        let bytes = self.text.as_bytes();
        let mut end = start + 1;
        loop {
            match bytes.get(end) {
                Some(b'"') => break,
                Some(b'\\') => end += 2,
                Some(_) => end += 1,
                None => return Err(self.syntax("unterminated string")),
            }
        }
        let token = self.text.get(start..=end).unwrap_or_default();
        let text: String = serde_json::from_str(token).map_err(|_| {
            self.syntax("invalid string: a control character, a bad escape or a lone surrogate")
        })?;
        self.position = end + 1;
        Ok(text)
    }

    /// A number token, checked against the JSON grammar, then read by its syntax.
    fn number(&mut self) -> Result<Value, ValueError> {
        let start = self.position;
        let bytes = self.text.as_bytes();
        let digits = |from: usize| {
            bytes.get(from..).map_or(0, |rest| {
                rest.iter().take_while(|b| b.is_ascii_digit()).count()
            })
        };
        let mut end = start;
        if bytes.get(end) == Some(&b'-') {
            end += 1;
        }
        let integer_digits = digits(end);
        if integer_digits == 0 {
            return Err(self.syntax("a number needs digits"));
        }
        if integer_digits > 1 && bytes.get(end) == Some(&b'0') {
            return Err(self.syntax("numbers must not have leading zeros"));
        }
        end += integer_digits;
        let mut is_integer = true;
        if bytes.get(end) == Some(&b'.') {
            let fraction = digits(end + 1);
            if fraction == 0 {
                self.position = end + 1;
                return Err(self.syntax("a decimal point must be followed by digits"));
            }
            end += 1 + fraction;
            is_integer = false;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            end += 1;
            if matches!(bytes.get(end), Some(b'+' | b'-')) {
                end += 1;
            }
            let exponent = digits(end);
            if exponent == 0 {
                self.position = end;
                return Err(self.syntax("an exponent needs digits"));
            }
            end += exponent;
            is_integer = false;
        }
        let token = self.text.get(start..end).unwrap_or_default();
        self.position = end;
        if is_integer {
            return self.integer(token);
        }
        let float: f64 = token
            .parse()
            .map_err(|_| self.syntax("not a valid number"))?;
        Number::from_f64(float)
            .map(Value::Number)
            .ok_or_else(|| ValueError::NumberOutOfRange {
                path: self.path.clone(),
                number: shorten(token),
                problem: "its magnitude is too large for a double-precision float",
            })
    }

    /// An integer token, which must fit the body integer range exactly.
    fn integer(&self, token: &str) -> Result<Value, ValueError> {
        let out_of_range = || ValueError::NumberOutOfRange {
            path: self.path.clone(),
            number: shorten(token),
            problem: "integers must lie in [-2^63, 2^64 - 1]: send larger ones as strings",
        };
        // 21 characters hold every in-range integer ("-9223372036854775808" is 20); longer
        // tokens are out of range whatever their digits.
        if token.len() > 21 {
            return Err(out_of_range());
        }
        let wide: i128 = token.parse().map_err(|_| out_of_range())?;
        if !(MIN_INTEGER..=MAX_INTEGER).contains(&wide) {
            return Err(out_of_range());
        }
        Ok(match (u64::try_from(wide), i64::try_from(wide)) {
            (Ok(unsigned), _) => Value::from(unsigned),
            (_, Ok(signed)) => Value::from(signed),
            _ => return Err(out_of_range()),
        })
    }
}

/// A number as quoted in an error: at most 40 characters of it.
fn shorten(token: &str) -> String {
    if token.len() <= 40 {
        token.to_owned()
    } else {
        format!(
            "{}… ({} characters)",
            token.get(..40).unwrap_or(token),
            token.len()
        )
    }
}
