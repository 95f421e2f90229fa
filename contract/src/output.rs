//! The output file rules (DESIGN.md "The output file"), in one place: the
//! agent (`lifecycle-agent validate` and the sidecar) and the server's outputs
//! API call the same [`parse`].
//!
//! ```json
//! { "POSTGRES_DB_HOST": { "sensitive": false, "value": "zf138d9c8-postgresql" },
//!   "POSTGRES_DB_PASS": { "sensitive": true,  "value": "mypassword" } }
//! ```
//!
//! # Rules
//! - At most [`OUTPUT_FILE_MAX_BYTES`] bytes (rule `too-large`), checked first.
//! - A leading UTF-8 byte order mark is ignored. A file that, apart from that
//!   mark, holds nothing but JSON whitespace (space, tab, CR, LF) — including a
//!   0-byte file — is an **empty file**: no outputs, not an error
//!   ([`Outputs::empty_file`] is true; DESIGN: the job's earlier outputs stay).
//!   `{}` is *not* an empty file: it is a valid file with no entries.
//! - Otherwise the file must be UTF-8 (rule `encoding`) and one JSON object
//!   (rule `top-level-object`) in strict RFC 8259 syntax (rule `syntax`;
//!   nesting is limited to [`MAX_DEPTH`] levels, rule `nesting-depth`).
//! - Each key matches `^[A-Za-z_][A-Za-z0-9_]*$` (rule `key-pattern`) and is
//!   uppercased; a repeated key, or two keys equal once uppercased, reject the
//!   file (rule `duplicate-key`).
//! - Each entry is an object (rule `entry-object`) whose fields appear at most
//!   once (rule `duplicate-field`), with:
//!   - `value` (rule `value-missing` when absent), published as text:
//!     - a string as it is;
//!     - a number or a boolean as its JSON text exactly as written (`5432`,
//!       `1.50`, `true`);
//!     - an array or an object as its compact JSON text, as Qovery's engine
//!       does, so that `terraform output -json` / `tofu output -json` files
//!       work unchanged: `["a","b"]`, `{"env":"pr-42"}`. See "Compact JSON
//!       text" below;
//!     - null rejects the file (rule `value-type`), with a hint: Terraform and
//!       OpenTofu leave null outputs out of `output -json`, so a null means
//!       the file was not written by them as it is.
//!
//!     A value whose text holds a NUL character rejects the file too (rule
//!     `value-content`): no environment variable can hold one, and it would
//!     break every workload of the environment at start. (A `\u0000` inside an
//!     array or object stays escaped in its compact text: it is no NUL there.)
//!   - `sensitive` (optional, default false): a boolean (rule `sensitive-type`).
//!     It applies to the whole text: a sensitive list is one masked value.
//!   - `type` (Terraform's, e.g. `["list","string"]`) and `description`
//!     (Qovery's): known fields, accepted silently whatever they hold, and
//!     never published.
//!   - any other field is ignored with a warning (rule `unknown-field`), except
//!     a field that differs from `value` or `sensitive` only by letter case
//!     (`"Sensitive": true`), which rejects the file (rule `field-name-case`):
//!     ignoring it would silently publish a secret as a non-sensitive value.
//!     `"Type"` and `"Description"` are only warned about (with the lowercase
//!     spelling as hint): they are never published, however written, so
//!     ignoring them can neither leak a secret nor change what is published,
//!     and rejecting a file for them would refuse files that Qovery accepts.
//! - Any broken rule rejects the whole file. All errors found are reported
//!   (at most [`MAX_ERRORS`], rule `too-many-errors` then), except that parsing
//!   stops at the first syntax error.
//!
//! # Compact JSON text
//! The text published for an array or an object is the value as written in
//! the file with the whitespace between tokens removed: members keep the
//! order they are written in (no sorting), numbers keep their text (`1.50`
//! stays `1.50`), and strings are written back escaped as
//! `serde_json::to_string` escapes them (`\"`, `\\`, control characters;
//! `\u00e9` becomes `é`). It is deterministic, and it is what
//! `serde_json::to_string` gives for the value parsed with serde_json's
//! `preserve_order` and `arbitrary_precision` features. For a Terraform or
//! OpenTofu file (object keys sorted, numbers in plain form) that is also what
//! plain serde_json gives, which is what Qovery's engine publishes
//! (`serde_json::Value::to_string`). An object inside a value that repeats a
//! member name rejects the file (rule `duplicate-key`): JSON readers disagree
//! on which one counts. The compact text is never longer than the value as
//! written, so it counts against the same size limits as a string (the
//! file's [`OUTPUT_FILE_MAX_BYTES`], then the environment's ConfigMap or
//! Secret). The one-pass parser checks the value (positions for errors) and
//! records its byte range; the compact text is then written from that range.
//!
//! # Diagnostics never hold values
//! A [`Diagnostic`] names a position (line and column, both 1-based; the
//! column counts characters, the byte order mark excluded), the key (as
//! written in the file, escaped and shortened when it breaks the key rule),
//! the rule, and a hint. It never holds a value or any other text of the file
//! besides keys and entry field names: a value could be a secret even when
//! `sensitive` is mistyped. Only a few fixed words (`False`, `None`, ...) are
//! named, to give the hint that fixes them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fmt::Write as _;

use crate::names::OUTPUT_FILE_MAX_BYTES;

/// What is shown instead of a sensitive value.
pub const MASK: &str = "******";
/// Deepest nesting of arrays and objects accepted (the top-level object is level 1).
pub const MAX_DEPTH: usize = 64;
/// Most errors reported for one file; parsing stops after that.
pub const MAX_ERRORS: usize = 100;
/// Most warnings reported for one file (one more says how many were left out).
pub const MAX_WARNINGS: usize = 100;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One published output.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// The key, uppercased.
    pub key: String,
    /// The value's text: the string, the JSON text of a number or boolean as
    /// written, or the compact JSON text of an array or object.
    pub value: String,
    pub sensitive: bool,
}

impl Output {
    /// The value, or [`MASK`] when it is sensitive: what people may see.
    pub fn display_value(&self) -> &str {
        if self.sensitive { MASK } else { &self.value }
    }
}

/// Masks the value when the output is sensitive.
impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("key", &self.key)
            .field("value", &self.display_value())
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

/// An accepted output file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outputs {
    /// The outputs, sorted by key; keys are unique.
    pub entries: Vec<Output>,
    /// Things ignored (unknown fields). Never values.
    pub warnings: Vec<Diagnostic>,
    /// The file was empty (0 bytes, or only whitespace and a byte order mark):
    /// no outputs, and the job's earlier outputs stay. False for `{}`.
    pub empty_file: bool,
}

impl Outputs {
    /// No outputs (an empty file, or `{}`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The output of an (uppercased) key.
    pub fn get(&self, key: &str) -> Option<&Output> {
        self.entries.binary_search_by(|o| o.key.as_str().cmp(key)).ok().map(|i| &self.entries[i])
    }

    /// How many outputs are sensitive.
    pub fn sensitive_count(&self) -> usize {
        self.entries.iter().filter(|o| o.sensitive).count()
    }
}

/// The rule a [`Diagnostic`] is about. [`Rule::as_str`] is a stable kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Not JSON.
    Syntax,
    /// Not UTF-8.
    Encoding,
    /// More than [`OUTPUT_FILE_MAX_BYTES`].
    TooLarge,
    /// Arrays/objects nested deeper than [`MAX_DEPTH`].
    NestingDepth,
    /// The file is not one JSON object.
    TopLevelObject,
    /// A key does not match `^[A-Za-z_][A-Za-z0-9_]*$`.
    KeyPattern,
    /// A key repeated, or equal to another once uppercased; or a member name
    /// repeated in an object inside a `value`.
    DuplicateKey,
    /// An entry is not an object.
    EntryObject,
    /// A field repeated inside an entry.
    DuplicateField,
    /// `Value` / `SENSITIVE` and the like: a known field with the wrong letter case.
    FieldNameCase,
    /// An entry without `value`.
    ValueMissing,
    /// `value` is null.
    ValueType,
    /// `value` holds a character no environment variable can hold (NUL).
    ValueContent,
    /// `sensitive` is not a boolean.
    SensitiveType,
    /// An unknown field in an entry (a warning, not an error); `type` and
    /// `description` are known.
    UnknownField,
    /// More than [`MAX_ERRORS`] errors: the rest were not looked for.
    TooManyErrors,
}

impl Rule {
    pub const ALL: [Rule; 16] = [
        Rule::Syntax,
        Rule::Encoding,
        Rule::TooLarge,
        Rule::NestingDepth,
        Rule::TopLevelObject,
        Rule::KeyPattern,
        Rule::DuplicateKey,
        Rule::EntryObject,
        Rule::DuplicateField,
        Rule::FieldNameCase,
        Rule::ValueMissing,
        Rule::ValueType,
        Rule::ValueContent,
        Rule::SensitiveType,
        Rule::UnknownField,
        Rule::TooManyErrors,
    ];

    /// Stable kebab-case name, e.g. `sensitive-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Syntax => "syntax",
            Rule::Encoding => "encoding",
            Rule::TooLarge => "too-large",
            Rule::NestingDepth => "nesting-depth",
            Rule::TopLevelObject => "top-level-object",
            Rule::KeyPattern => "key-pattern",
            Rule::DuplicateKey => "duplicate-key",
            Rule::EntryObject => "entry-object",
            Rule::DuplicateField => "duplicate-field",
            Rule::FieldNameCase => "field-name-case",
            Rule::ValueMissing => "value-missing",
            Rule::ValueType => "value-type",
            Rule::ValueContent => "value-content",
            Rule::SensitiveType => "sensitive-type",
            Rule::UnknownField => "unknown-field",
            Rule::TooManyErrors => "too-many-errors",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error or a warning about the file. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line; 0 when about the whole file (e.g. too large).
    pub line: usize,
    /// 1-based column in characters; 0 when about the whole file.
    pub column: usize,
    /// The key of the entry concerned, as written in the file (escaped and
    /// shortened when it breaks the key rule).
    pub key: Option<String>,
    pub rule: Rule,
    pub message: String,
    pub hint: Option<String>,
}

/// `line 3, column 14: key POSTGRES_DB_PASS: expected a JSON value, found `False` (rule: syntax). hint: `False` is not JSON: write `false``
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if let Some(key) = &self.key {
            if is_valid_key(key) {
                write!(f, "key {key}: ")?;
            } else {
                write!(f, "key \"{key}\": ")?;
            }
        }
        write!(f, "{} (rule: {})", self.message, self.rule)?;
        if let Some(hint) = &self.hint {
            write!(f, ". hint: {hint}")?;
        }
        Ok(())
    }
}

/// A rejected file: every error found (never empty). Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub errors: Vec<Diagnostic>,
}

/// One line: `output file rejected (2 errors): <error>; <error>`.
/// The alternate form (`{:#}`) puts each error on its own line.
impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "output file rejected ({n} error{})", if n == 1 { "" } else { "s" })?;
        for (i, e) in self.errors.iter().enumerate() {
            if f.alternate() {
                write!(f, "\n  {e}")?;
            } else {
                write!(f, "{}{e}", if i == 0 { ": " } else { "; " })?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// True when `key` matches `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty() && (b[0].is_ascii_alphabetic() || b[0] == b'_') && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Checks an output file and returns its outputs, or every error found.
pub fn parse(bytes: &[u8]) -> Result<Outputs, Rejected> {
    if bytes.len() > OUTPUT_FILE_MAX_BYTES {
        return Err(Rejected {
            errors: vec![whole_file(
                Rule::TooLarge,
                format!("the file is {} bytes, more than the {OUTPUT_FILE_MAX_BYTES} bytes (1 MiB) allowed", bytes.len()),
                None,
            )],
        });
    }
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if body.iter().all(|b| is_ws(*b)) {
        return Ok(Outputs { empty_file: true, ..Outputs::default() });
    }
    if body.starts_with(b"\xFF\xFE") || body.starts_with(b"\xFE\xFF") {
        return Err(Rejected {
            errors: vec![whole_file(
                Rule::Encoding,
                "the file is UTF-16 (it starts with a UTF-16 byte order mark), not UTF-8".into(),
                Some("save the file as UTF-8".into()),
            )],
        });
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let lines = LineIndex::new(&body[..at]);
            let (line, column) = lines.line_col(&body[..at], at);
            return Err(Rejected {
                errors: vec![Diagnostic {
                    line,
                    column,
                    key: None,
                    rule: Rule::Encoding,
                    message: format!("invalid UTF-8 at byte offset {}", at + (bytes.len() - body.len())),
                    hint: Some("save the file as UTF-8 (it may be in Latin-1 or Windows-1252)".into()),
                }],
            });
        }
    };
    let mut p = Parser::new(text);
    // A syntax error stops the parse; it has been recorded already.
    let _ = p.document();
    if p.warnings_left_out > 0 {
        p.warnings.push(whole_file(Rule::UnknownField, format!("{} more unknown fields are ignored", p.warnings_left_out), None));
    }
    if p.errors.is_empty() {
        let mut entries = p.entries;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Outputs { entries, warnings: p.warnings, empty_file: false })
    } else {
        Err(Rejected { errors: p.errors })
    }
}

fn whole_file(rule: Rule, message: String, hint: Option<String>) -> Diagnostic {
    Diagnostic { line: 0, column: 0, key: None, rule, message, hint }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A key or field name as shown in a diagnostic: control characters and
/// quotes escaped, at most 64 characters.
fn shown(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == 64 {
            s.push('…');
            break;
        }
        if c.is_control() || c == '"' || c == '\\' || c == '`' {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

/// Line starts, built once for the positions of diagnostics.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(b: &[u8]) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(b.iter().enumerate().filter(|(_, c)| **c == b'\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of byte offset `pos`.
    fn line_col(&self, b: &[u8], pos: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|s| *s <= pos);
        let start = self.starts[line - 1];
        let end = pos.min(b.len());
        let column = b[start.min(end)..end].iter().filter(|c| (**c & 0xC0) != 0x80).count() + 1;
        (line, column)
    }
}

/// A syntax error (or another error that ends the parse) was recorded.
struct Fatal;
type PResult<T> = Result<T, Fatal>;

/// A JSON value, as much as the rules need of it.
enum Val {
    Str(String),
    /// Byte range of the number's text.
    Num(usize, usize),
    Bool(bool),
    Null,
    /// Byte range of the array's text, brackets included.
    Array(usize, usize),
    /// Byte range of the object's text, braces included.
    Object(usize, usize),
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Num(..) => "a number",
            Val::Bool(_) => "a boolean",
            Val::Null => "null",
            Val::Array(..) => "an array",
            Val::Object(..) => "an object",
        }
    }
}

const ENTRY_SHAPE: &str = r#"{ "value": "...", "sensitive": false }"#;

/// Why a null `value` is refused, and what to write instead.
const NULL_HINT: &str = "write \"\" for an empty value, or remove the entry; `terraform output -json` and \
                         `tofu output -json` leave null outputs out, so they did not write this file as it is";

const FIELDS_HINT: &str = "an entry has `value` and `sensitive`, and may have `type` and `description` (not published)";

/// The fix for a word that is not JSON but is often written for one of
/// JSON's (`False`, `None`...). Only these few fixed words are ever named in a
/// diagnostic.
fn word_fix(w: &str) -> Option<&'static str> {
    match w {
        "True" | "TRUE" => Some("write `true`"),
        "False" | "FALSE" => Some("write `false`"),
        "None" | "NULL" | "Null" | "nil" | "undefined" => Some("JSON's is `null`"),
        "NaN" | "Infinity" | "inf" => Some("write the value as a string"),
        "yes" | "no" | "Yes" | "No" | "on" | "off" => Some("write `true` or `false`"),
        _ => None,
    }
}

/// `true`, `false`, `null`, or a word [`word_fix`] knows.
fn is_json_or_known_word(w: &str) -> bool {
    matches!(w, "true" | "false" | "null") || word_fix(w).is_some()
}

/// An entry's fields, as read so far.
#[derive(Default)]
struct EntryFields {
    /// Names seen, to refuse a repeated one.
    names: HashSet<String>,
    /// The text to publish; empty once `value` broke a rule.
    value: Option<String>,
    sensitive: bool,
    /// A mis-cased `Value` was seen: the entry is not also reported as missing its value.
    miscased_value: bool,
    /// A rule is broken: nothing of the entry is published.
    broken: bool,
}

/// `s` as a JSON string, escaped as `serde_json::to_string` escapes it: `\"`,
/// `\\`, and control characters (`\n`-style where JSON has one, else
/// `\u00xx`); nothing else, so non-ASCII stays as it is.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    lines: Option<LineIndex>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    warnings_left_out: usize,
    entries: Vec<Output>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            b: text.as_bytes(),
            pos: 0,
            lines: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            warnings_left_out: 0,
            entries: Vec::new(),
        }
    }

    // ---- diagnostics ----

    fn line_col(&mut self, pos: usize) -> (usize, usize) {
        let b = self.b;
        self.lines.get_or_insert_with(|| LineIndex::new(b)).line_col(b, pos)
    }

    fn diag(&mut self, pos: usize, key: Option<&str>, rule: Rule, message: String, hint: Option<String>) -> Diagnostic {
        let (line, column) = self.line_col(pos);
        Diagnostic { line, column, key: key.map(shown), rule, message, hint }
    }

    /// Records an error that does not stop the parse (unless there are too many).
    fn error(&mut self, pos: usize, key: Option<&str>, rule: Rule, message: String, hint: Option<String>) -> PResult<()> {
        let d = self.diag(pos, key, rule, message, hint);
        self.errors.push(d);
        if self.errors.len() >= MAX_ERRORS {
            let d = self.diag(
                pos,
                None,
                Rule::TooManyErrors,
                format!("{MAX_ERRORS} errors found; the rest of the file was not checked"),
                None,
            );
            self.errors.push(d);
            return Err(Fatal);
        }
        Ok(())
    }

    /// Records an error that stops the parse.
    fn fatal(&mut self, pos: usize, key: Option<&str>, rule: Rule, message: impl Into<String>, hint: Option<String>) -> Fatal {
        let d = self.diag(pos, key, rule, message.into(), hint);
        self.errors.push(d);
        Fatal
    }

    fn syntax(&mut self, pos: usize, key: Option<&str>, message: impl Into<String>, hint: Option<String>) -> Fatal {
        self.fatal(pos, key, Rule::Syntax, message, hint)
    }

    fn warn(&mut self, pos: usize, key: Option<&str>, rule: Rule, message: String, hint: Option<String>) {
        if self.warnings.len() < MAX_WARNINGS {
            let d = self.diag(pos, key, rule, message, hint);
            self.warnings.push(d);
        } else {
            self.warnings_left_out += 1;
        }
    }

    /// A syntax error for an unexpected character where `expected` was expected.
    /// Names the character only when it is structural or whitespace-like (never
    /// a character that could be part of a value).
    fn unexpected(&mut self, key: Option<&str>, expected: &str) -> Fatal {
        let pos = self.pos;
        let rest = &self.text[pos..];
        let Some(c) = rest.chars().next() else {
            return self.syntax(pos, key, format!("unexpected end of file: expected {expected}"), None);
        };
        let (found, hint): (&str, Option<String>) = match c {
            '\'' => ("a single quote", Some("JSON strings use double quotes: write \"...\", not '...'".into())),
            '/' if rest.starts_with("//") || rest.starts_with("/*") => {
                ("a comment", Some("JSON has no comments: remove it".into()))
            }
            '#' => ("`#`", Some("JSON has no comments: remove it".into())),
            '{' => ("`{`", None),
            '}' => ("`}`", None),
            '[' => ("`[`", None),
            ']' => ("`]`", None),
            ':' => ("`:`", None),
            ',' => ("`,`", None),
            '=' => ("`=`", Some("use `:` between a key and its value".into())),
            ';' => ("`;`", Some("use `,` between entries".into())),
            '"' => ("`\"`", None),
            '\0' => ("a NUL byte", Some("is the file UTF-16? save it as UTF-8".into())),
            '\u{a0}' => ("a non-breaking space (U+00A0)", Some("replace it with a plain space".into())),
            '\u{feff}' => {
                ("a byte order mark (U+FEFF)", Some("remove it: only one, at the very start of the file, is allowed".into()))
            }
            '\u{200b}' => ("a zero-width space (U+200B)", Some("remove it".into())),
            '\u{201c}' | '\u{201d}' => ("a curly quote", Some("use straight double quotes `\"`".into())),
            '.' | '+' => (
                "a number that is not JSON",
                Some("JSON numbers have digits before `.` and no `+` sign; or write the value as a string".into()),
            ),
            c if c.is_ascii_alphabetic() || c == '_' => {
                ("an unquoted word", Some("strings and keys must be in double quotes".into()))
            }
            c if c.is_ascii_digit() || c == '-' => ("a number", None),
            c if c.is_whitespace() => {
                ("a whitespace character that is not JSON whitespace", Some("replace it with a plain space".into()))
            }
            _ => ("an unexpected character", None),
        };
        self.syntax(pos, key, format!("expected {expected}, found {found}"), hint)
    }

    // ---- lexing ----

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if is_ws(c) {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// A string, at `"`.
    fn string(&mut self, key: Option<&str>) -> PResult<String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run..self.pos]);
            match self.peek() {
                None => {
                    let (l, c) = self.line_col(start);
                    return Err(self.syntax(
                        self.pos,
                        key,
                        format!("unexpected end of file: the string that starts at line {l}, column {c} is not closed"),
                        Some("add the closing `\"`".into()),
                    ));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(key, &mut out)?,
                Some(b'\n') | Some(b'\r') => {
                    let (l, c) = self.line_col(start);
                    return Err(self.syntax(
                        self.pos,
                        key,
                        format!("line break inside the string that starts at line {l}, column {c}"),
                        Some("close the string with `\"` on the same line, or write `\\n` for a line break".into()),
                    ));
                }
                Some(b'\t') => {
                    return Err(self.syntax(
                        self.pos,
                        key,
                        "tab character inside a string",
                        Some("write `\\t` for a tab".into()),
                    ));
                }
                Some(_) => {
                    return Err(self.syntax(
                        self.pos,
                        key,
                        "control character inside a string",
                        Some("escape it as `\\u00XX`".into()),
                    ));
                }
            }
        }
    }

    /// An escape, at `\`.
    fn escape(&mut self, key: Option<&str>, out: &mut String) -> PResult<()> {
        let at = self.pos;
        let c = self.b.get(at + 1).copied();
        self.pos += 2;
        let ch = match c {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = self.hex4(at, key)?;
                if (0xD800..0xDC00).contains(&hi) {
                    if self.b.get(self.pos) == Some(&b'\\') && self.b.get(self.pos + 1) == Some(&b'u') {
                        let at2 = self.pos;
                        self.pos += 2;
                        let lo = self.hex4(at2, key)?;
                        if (0xDC00..0xE000).contains(&lo) {
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            char::from_u32(cp).unwrap_or('\u{fffd}')
                        } else {
                            return Err(self.lone_surrogate(at, key));
                        }
                    } else {
                        return Err(self.lone_surrogate(at, key));
                    }
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(self.lone_surrogate(at, key));
                } else {
                    char::from_u32(hi).unwrap_or('\u{fffd}')
                }
            }
            None => {
                return Err(self.syntax(at, key, "unexpected end of file inside a string", None));
            }
            Some(_) => {
                return Err(self.syntax(
                    at,
                    key,
                    "invalid escape sequence in a string",
                    Some(r#"the escapes are \" \\ \/ \b \f \n \r \t \uXXXX; write \\ for a backslash"#.into()),
                ));
            }
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self, at: usize, key: Option<&str>) -> PResult<u32> {
        let digits = self.b.get(self.pos..self.pos + 4);
        match digits {
            Some(d) if d.iter().all(u8::is_ascii_hexdigit) => {
                self.pos += 4;
                // Four ASCII hex digits: from_str_radix cannot fail.
                Ok(u32::from_str_radix(&self.text[self.pos - 4..self.pos], 16).unwrap_or(0xFFFD))
            }
            _ => Err(self.syntax(
                at,
                key,
                "invalid \\u escape: it needs four hex digits",
                Some("write \\u followed by four hex digits, e.g. \\u00e9".into()),
            )),
        }
    }

    fn lone_surrogate(&mut self, at: usize, key: Option<&str>) -> Fatal {
        self.syntax(
            at,
            key,
            "invalid \\u escape: a UTF-16 surrogate that is not part of a pair",
            Some("a character above U+FFFF is written as a pair, e.g. \\ud83d\\ude00".into()),
        )
    }

    /// A number, at `-` or a digit: returns its byte range.
    fn number(&mut self, key: Option<&str>) -> PResult<(usize, usize)> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.syntax(
                        start,
                        key,
                        "a JSON number cannot start with 0 followed by more digits",
                        Some("write it as a string to keep the leading zeros".into()),
                    ));
                }
            }
            Some(c) if c.is_ascii_digit() => {
                digits(self);
            }
            _ => {
                return Err(self.syntax(start, key, "`-` must be followed by digits", None));
            }
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.syntax(
                    start,
                    key,
                    "a JSON number needs digits after the decimal point",
                    Some("write the value as a string".into()),
                ));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.syntax(
                    start,
                    key,
                    "a JSON number needs digits after its exponent",
                    Some("write the value as a string".into()),
                ));
            }
        }
        Ok((start, self.pos))
    }

    /// A word at a value position: `true`, `false`, `null` or a known mistake.
    fn word(&mut self, key: Option<&str>) -> PResult<Val> {
        let start = self.pos;
        let w = self.word_at();
        let len = w.len();
        let val = match w {
            "true" => Some(Val::Bool(true)),
            "false" => Some(Val::Bool(false)),
            "null" => Some(Val::Null),
            _ => None,
        };
        if let Some(v) = val {
            self.pos += len;
            return Ok(v);
        }
        Err(match word_fix(w) {
            Some(fix) => {
                self.syntax(start, key, format!("expected a JSON value, found `{w}`"), Some(format!("`{w}` is not JSON: {fix}")))
            }
            None => self.syntax(
                start,
                key,
                "expected a JSON value, found an unquoted word",
                Some("strings must be in double quotes".into()),
            ),
        })
    }

    /// The word (letters, digits, `_`) at the position; empty if none.
    fn word_at(&self) -> &'a str {
        let len = self.b[self.pos..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        &self.text[self.pos..self.pos + len]
    }

    // ---- values ----

    /// Any value; arrays and objects are checked and skipped. `depth` is the
    /// nesting level of the container holding the value.
    fn value(&mut self, depth: usize, key: Option<&str>) -> PResult<Val> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => Ok(Val::Str(self.string(key)?)),
            Some(b'{') => {
                let start = self.pos;
                self.skip_object(depth + 1, key)?;
                Ok(Val::Object(start, self.pos))
            }
            Some(b'[') => {
                let start = self.pos;
                self.skip_array(depth + 1, key)?;
                Ok(Val::Array(start, self.pos))
            }
            Some(b'-' | b'0'..=b'9') => {
                let (s, e) = self.number(key)?;
                Ok(Val::Num(s, e))
            }
            Some(c) if c.is_ascii_alphabetic() => self.word(key),
            _ => Err(self.unexpected(key, "a value")),
        }
    }

    fn check_depth(&mut self, depth: usize, key: Option<&str>) -> PResult<()> {
        if depth > MAX_DEPTH {
            return Err(self.fatal(
                self.pos,
                key,
                Rule::NestingDepth,
                format!("arrays and objects are nested more than {MAX_DEPTH} levels deep"),
                None,
            ));
        }
        Ok(())
    }

    /// After a member or element: `,` (returns true) or the closing `close` (returns false).
    fn next_member(&mut self, open_at: usize, close: u8, key: Option<&str>) -> PResult<bool> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                let comma = self.pos;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    return Err(self.syntax(
                        comma,
                        key,
                        format!("trailing comma before `{}`", close as char),
                        Some(format!("remove the `,` before `{}`", close as char)),
                    ));
                }
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            None => {
                let (l, c) = self.line_col(open_at);
                let what = if close == b'}' { "object" } else { "array" };
                Err(self.syntax(
                    self.pos,
                    key,
                    format!("unexpected end of file: the {what} opened at line {l}, column {c} is not closed"),
                    Some(format!("add the missing `{}`", close as char)),
                ))
            }
            Some(b'"') if close == b'}' => Err(self.syntax(
                self.pos,
                key,
                "expected `,` or `}`, found the start of another key",
                Some("add the missing `,` after the previous entry".into()),
            )),
            _ => {
                let expected = format!("`,` or `{}`", close as char);
                Err(self.unexpected(key, &expected))
            }
        }
    }

    /// A member name, at its expected position (after `{` or `,`).
    fn member_name(&mut self, key: Option<&str>) -> PResult<(usize, String)> {
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            Some(b'"') => Ok((at, self.string(key)?)),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => Err(self.syntax(
                at,
                key,
                "expected a key in double quotes, found an unquoted word",
                Some("write keys in double quotes: \"KEY\"".into()),
            )),
            _ => Err(self.unexpected(key, "a key in double quotes")),
        }
    }

    fn colon(&mut self, key: Option<&str>) -> PResult<()> {
        self.skip_ws();
        if self.peek() == Some(b':') {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(key, "`:` after the key"))
        }
    }

    fn skip_object(&mut self, depth: usize, key: Option<&str>) -> PResult<()> {
        self.check_depth(depth, key)?;
        let open_at = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.member_name(key)?;
            self.colon(key)?;
            self.value(depth, key)?;
            if !self.next_member(open_at, b'}', key)? {
                return Ok(());
            }
        }
    }

    fn skip_array(&mut self, depth: usize, key: Option<&str>) -> PResult<()> {
        self.check_depth(depth, key)?;
        let open_at = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth, key)?;
            if !self.next_member(open_at, b']', key)? {
                return Ok(());
            }
        }
    }

    // ---- the file ----

    fn document(&mut self) -> PResult<()> {
        self.skip_ws();
        if let Some(found) = self.not_an_object()? {
            return Err(self.fatal(
                self.pos,
                None,
                Rule::TopLevelObject,
                format!("the file must be one JSON object, found {found}"),
                Some(format!("write {{ \"KEY\": {ENTRY_SHAPE}, ... }}")),
            ));
        }
        self.top_object()?;
        self.end_of_file()
    }

    /// What the file holds instead of one object, if it does; the position
    /// stays at its start (for the error).
    fn not_an_object(&mut self) -> PResult<Option<&'static str>> {
        Ok(match self.peek() {
            Some(b'{') => None,
            Some(b'[') => Some("an array"),
            Some(b'"') => Some("a string"),
            Some(b'-' | b'0'..=b'9') => Some("a number"),
            Some(c) if c.is_ascii_alphabetic() && !is_json_or_known_word(self.word_at()) => {
                // Often a message (`Warning: ...`) that the command writing the file
                // printed on its standard output, before the JSON.
                return Err(self.syntax(
                    self.pos,
                    None,
                    "expected `{`, found an unquoted word",
                    Some(
                        "the file must hold only one JSON object: did the command that wrote it print messages on its \
                         standard output (e.g. `Warning: ...`)? keep only the JSON in the file"
                            .into(),
                    ),
                ));
            }
            _ => {
                // `true`, `false` or `null`; anything else is a syntax error, recorded by `value`.
                let pos = self.pos;
                let v = self.value(0, None)?;
                self.pos = pos;
                Some(if matches!(v, Val::Bool(_)) { "a boolean" } else { "null" })
            }
        })
    }

    /// Only whitespace may follow the top-level object.
    fn end_of_file(&mut self) -> PResult<()> {
        self.skip_ws();
        if self.pos == self.b.len() {
            return Ok(());
        }
        let hint = if self.peek() == Some(b'{') {
            "the file must hold a single object: merge the entries into one { ... }"
        } else {
            "remove what follows the closing `}`"
        };
        Err(self.syntax(self.pos, None, "unexpected content after the end of the top-level object", Some(hint.into())))
    }

    fn top_object(&mut self) -> PResult<()> {
        let open_at = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        // uppercased key -> (key as written, its position)
        let mut seen: HashMap<String, (String, usize)> = HashMap::new();
        loop {
            let (at, key) = self.member_name(None)?;
            let ok = self.check_key(at, &key, &mut seen)?;
            self.colon(Some(&key))?;
            if let Some((value, sensitive)) = self.entry(&key)?
                && ok
            {
                self.entries.push(Output { key: key.to_ascii_uppercase(), value, sensitive });
            }
            if !self.next_member(open_at, b'}', Some(&key))? {
                return Ok(());
            }
        }
    }

    /// The key rules: the pattern, and no other key equal to it once
    /// uppercased (`seen`). True when the key follows them.
    fn check_key(&mut self, at: usize, key: &str, seen: &mut HashMap<String, (String, usize)>) -> PResult<bool> {
        if !is_valid_key(key) {
            let hint = if key.is_empty() {
                "a key cannot be empty"
            } else if key.as_bytes()[0].is_ascii_digit() {
                "a key cannot start with a digit; prefix it with a letter or `_`"
            } else {
                "use only letters, digits and `_` (e.g. `_` instead of `-`, `.` or a space)"
            };
            let message = "the key does not match ^[A-Za-z_][A-Za-z0-9_]*$".to_string();
            self.error(at, Some(key), Rule::KeyPattern, message, Some(hint.into()))?;
            return Ok(false);
        }
        let upper = key.to_ascii_uppercase();
        let Some((first, first_at)) = seen.get(&upper) else {
            seen.insert(upper, (key.to_string(), at));
            return Ok(true);
        };
        let (first_line, _) = self.line_col(*first_at);
        let message = if first == key {
            format!("the key appears twice (first on line {first_line})")
        } else {
            format!("the key is the same as key {} on line {first_line} once uppercased", shown(first))
        };
        self.error(at, Some(key), Rule::DuplicateKey, message, Some("keys are uppercased: keep only one of them".into()))?;
        Ok(false)
    }

    // ---- entries ----

    /// One entry's object: Some((value, sensitive)) when it follows the rules.
    fn entry(&mut self, key: &str) -> PResult<Option<(String, bool)>> {
        let k = Some(key);
        self.skip_ws();
        let at = self.pos;
        if self.peek() != Some(b'{') {
            self.not_an_entry(at, key)?;
            return Ok(None);
        }
        self.check_depth(2, k)?;
        self.pos += 1;
        let mut fields = EntryFields::default();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.entry_field(key, &mut fields)?;
                if !self.next_member(at, b'}', k)? {
                    break;
                }
            }
        }
        if fields.value.is_none() && !fields.miscased_value {
            fields.broken = true;
            self.error(at, k, Rule::ValueMissing, "the entry has no `value`".into(), Some(format!("write {ENTRY_SHAPE}")))?;
        }
        Ok(match fields {
            EntryFields { broken: false, value: Some(v), sensitive, .. } => Some((v, sensitive)),
            _ => None,
        })
    }

    /// At an entry's place, something that is not an object.
    fn not_an_entry(&mut self, at: usize, key: &str) -> PResult<()> {
        let v = self.value(1, Some(key))?;
        let hint = if key == "value" || key == "sensitive" {
            format!("the top level maps each KEY to its entry: {{ \"KEY\": {ENTRY_SHAPE} }}")
        } else {
            format!("write \"{}\": {ENTRY_SHAPE}", shown(key))
        };
        let message = format!("the entry must be an object {ENTRY_SHAPE}, found {}", v.kind());
        self.error(at, Some(key), Rule::EntryObject, message, Some(hint))
    }

    /// One field of an entry (name, `:` and value) into `fields`.
    fn entry_field(&mut self, key: &str, fields: &mut EntryFields) -> PResult<()> {
        let k = Some(key);
        let (name_at, name) = self.member_name(k)?;
        self.colon(k)?;
        self.skip_ws();
        let value_at = self.pos;
        let v = self.value(2, k)?;
        if !fields.names.insert(name.clone()) {
            fields.broken = true;
            let message = format!("field `{}` appears twice in the entry", shown(&name));
            return self.error(name_at, k, Rule::DuplicateField, message, Some("keep only one of them".into()));
        }
        match name.as_str() {
            "value" => {
                let text = self.published_text(value_at, key, v)?;
                fields.broken |= text.is_none();
                // A broken `value` is still there: not also reported as missing.
                fields.value = Some(text.unwrap_or_default());
            }
            "sensitive" => match self.sensitive(value_at, key, v)? {
                Some(b) => fields.sensitive = b,
                None => fields.broken = true,
            },
            // Terraform's and Qovery's: known, and not published.
            "type" | "description" => {}
            _ => self.other_field(name_at, key, &name, fields)?,
        }
        Ok(())
    }

    /// The text that `value` publishes: a string as it is, a number or a
    /// boolean as written, an array or an object as its compact JSON text.
    /// None when it breaks a rule (recorded).
    fn published_text(&mut self, at: usize, key: &str, v: Val) -> PResult<Option<String>> {
        let text = match v {
            Val::Str(s) => s,
            Val::Num(s, e) => self.text[s..e].to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Array(s, e) | Val::Object(s, e) => match self.compact(s, e, key)? {
                Some(text) => text,
                None => return Ok(None),
            },
            Val::Null => {
                let message = format!("`value` must be a string, a number, a boolean, an array or an object, found {}", v.kind());
                self.error(at, Some(key), Rule::ValueType, message, Some(NULL_HINT.into()))?;
                return Ok(None);
            }
        };
        if text.contains('\0') {
            let message = "`value` contains a NUL character (\\u0000), which no environment variable can hold".to_string();
            self.error(at, Some(key), Rule::ValueContent, message, Some("remove it".into()))?;
            return Ok(None);
        }
        Ok(Some(text))
    }

    /// `sensitive`: its boolean, or None when it is not one (recorded).
    fn sensitive(&mut self, at: usize, key: &str, v: Val) -> PResult<Option<bool>> {
        if let Val::Bool(b) = v {
            return Ok(Some(b));
        }
        let hint = match &v {
            Val::Str(s) if ["true", "false", "yes", "no", "0", "1"].iter().any(|w| s.trim().eq_ignore_ascii_case(w)) => {
                "write `true` or `false`, without quotes"
            }
            _ => "write `true` or `false`",
        };
        let message = format!("`sensitive` must be a boolean, found {}", v.kind());
        self.error(at, Some(key), Rule::SensitiveType, message, Some(hint.into()))?;
        Ok(None)
    }

    /// A field other than `value`, `sensitive`, `type` and `description`.
    fn other_field(&mut self, at: usize, key: &str, name: &str, fields: &mut EntryFields) -> PResult<()> {
        let k = Some(key);
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            // They decide what is published and where: ignoring `"Sensitive": true`
            // would publish a secret in the ConfigMap.
            "value" | "sensitive" => {
                fields.broken = true;
                fields.miscased_value |= lower == "value";
                let message = format!("field `{}` has the wrong letter case", shown(name));
                self.error(at, k, Rule::FieldNameCase, message, Some(format!("field names are lowercase: write `{lower}`")))
            }
            // Not published even when well written: ignoring them is harmless.
            "type" | "description" => {
                let message = format!("unknown field `{}` is ignored", shown(name));
                self.warn(at, k, Rule::UnknownField, message, Some(format!("field names are lowercase: write `{lower}`")));
                Ok(())
            }
            _ => {
                let message = format!("unknown field `{}` is ignored", shown(name));
                self.warn(at, k, Rule::UnknownField, message, Some(FIELDS_HINT.into()));
                Ok(())
            }
        }
    }

    /// The compact JSON text of the array or object at `start..end`, which
    /// the parser has checked already: no whitespace between tokens, members
    /// in the order written, numbers and literals as written, strings escaped
    /// as serde_json escapes them. None when an object inside repeats a member
    /// name (recorded): JSON readers disagree on which one counts, so the text
    /// would not say one value. Never longer than the text as written.
    fn compact(&mut self, start: usize, end: usize, key: &str) -> PResult<Option<String>> {
        let resume = self.pos;
        self.pos = start;
        let mut out = String::with_capacity(end - start);
        // One per open container: an object's member names and where each is; None for an array.
        let mut open: Vec<Option<HashMap<String, usize>>> = Vec::new();
        let mut repeated: Option<(usize, usize)> = None;
        while self.pos < end {
            let c = self.b[self.pos];
            match c {
                b'"' => {
                    let at = self.pos;
                    let s = self.string(Some(key))?;
                    push_json_string(&mut out, &s);
                    self.skip_ws();
                    if self.peek() == Some(b':')
                        && let Some(Some(names)) = open.last_mut()
                    {
                        let first = *names.entry(s).or_insert(at);
                        if first != at {
                            repeated.get_or_insert((at, first));
                        }
                    }
                    continue;
                }
                b'{' => open.push(Some(HashMap::new())),
                b'[' => open.push(None),
                b'}' | b']' => {
                    open.pop();
                }
                c if is_ws(c) => {
                    self.pos += 1;
                    continue;
                }
                // Outside strings the checked text is ASCII: numbers, literals, `,` and `:`.
                _ => {}
            }
            out.push(char::from(c));
            self.pos += 1;
        }
        self.pos = resume;
        let Some((at, first)) = repeated else {
            return Ok(Some(out));
        };
        let (line, column) = self.line_col(first);
        // The member's name is part of the value: it is not named.
        let message = format!("an object in `value` has a member name twice (first at line {line}, column {column})");
        let hint = "JSON readers disagree on which one counts: keep only one".to_string();
        self.error(at, Some(key), Rule::DuplicateKey, message, Some(hint))?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod value_tests;
