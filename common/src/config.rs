//! Config files: a main file and its drop-ins merged into one table, the record of which
//! file (and line) set each key, and errors that name them — all of a run's errors at
//! once, each as `file:line:column: key …: what is wrong`.
//!
//! Reading ([`load_all`]), per file: `${VAR}` interpolation ([`interpolate`]), TOML
//! syntax, then each key's file and position recorded in [`Sources`]. The merged table
//! is deserialised; a key serde refuses (unknown — with the nearest known name
//! suggested —, wrong type, bad unit) is reported and taken out, and the rest read
//! again, so one run reports every such key. A component's table is then checked by
//! the component (`build()` beside its `*Config`), which answers a [`KeyError`]; the
//! root collects them ([`Collect`]) into one [`ConfigError`] that names the file and
//! line that set each key, so an operator with twenty drop-ins edits the right one.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use thiserror::Error;

/// A key of a config table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The key's full path (`agent.buffer.sync_interval_ms`).
    pub key: String,
    pub message: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> KeyError {
        KeyError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}: {}", self.key, self.message)
    }
}

impl std::error::Error for KeyError {}

/// A place in a config file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `text`.
    pub fn of(text: &str, offset: usize) -> Position {
        let before = &text[..offset.min(text.len())];
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// `path`, or `path:line:column` when the position is known.
struct Place<'a>(&'a Path, Option<Position>);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(at) => write!(f, "{}:{}:{}", self.0.display(), at.line, at.column),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

/// Why a configuration could not be used. The binaries exit with 78 (`EX_CONFIG`).
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, or a `${VAR}` that cannot be interpolated.
    #[error("{}: {message}", Place(path, *at))]
    Parse {
        path: PathBuf,
        at: Option<Position>,
        message: String,
    },
    /// A key that cannot be used.
    #[error("{}: key {key}: {message}", Place(path, *at))]
    Invalid {
        path: PathBuf,
        at: Option<Position>,
        key: String,
        message: String,
    },
    /// Several of the above, each on its own line.
    #[error("{}", list(.0))]
    Several(Vec<ConfigError>),
}

fn list(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl ConfigError {
    /// One error for `errors` (which must not be empty): itself when alone.
    pub fn join(mut errors: Vec<ConfigError>) -> ConfigError {
        if errors.len() == 1
            && let Some(error) = errors.pop()
        {
            return error;
        }
        ConfigError::Several(errors)
    }

    /// Every single error this holds, in order.
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(errors) => errors.iter().flat_map(ConfigError::errors).collect(),
            single => vec![single],
        }
    }

    fn into_errors(self) -> Vec<ConfigError> {
        match self {
            ConfigError::Several(errors) => errors
                .into_iter()
                .flat_map(ConfigError::into_errors)
                .collect(),
            single => vec![single],
        }
    }
}

/// The files a configuration was merged from, and which of them set each key, where.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The main file first, then the drop-ins in the order they were merged.
    pub files: Vec<PathBuf>,
    /// Dotted key (`agent.inputs.file.paths`) → index in `files` of the last file
    /// that set it, and where in it.
    origins: HashMap<String, (usize, Option<Position>)>,
}

impl Sources {
    /// One file and nothing else.
    pub fn single(path: &Path) -> Sources {
        Sources {
            files: vec![path.to_path_buf()],
            origins: HashMap::new(),
        }
    }

    /// The file that set `key` (or the nearest table above it), and where; the main
    /// file when none did (a default).
    fn origin(&self, key: &str) -> (&Path, Option<Position>) {
        let mut key = key;
        loop {
            if let Some(&(index, at)) = self.origins.get(key) {
                return (&self.files[index], at);
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => {
                    let main = self
                        .files
                        .first()
                        .map_or(Path::new("(no file)"), PathBuf::as_path);
                    return (main, None);
                }
            }
        }
    }

    /// The file that set `key` (or the nearest table above it); the main file when
    /// none did (a default).
    pub fn file_for(&self, key: &str) -> &Path {
        self.origin(key).0
    }

    /// A component's [`KeyError`] as the root's error, naming the file and line that
    /// set the key.
    pub fn invalid(&self, error: KeyError) -> ConfigError {
        let (path, at) = self.origin(&error.key);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            at,
            key: error.key,
            message: error.message,
        }
    }

    fn record(&mut self, prefix: &str, table: &dyn toml_edit::TableLike, text: &str, index: usize) {
        for (name, item) in table.iter() {
            let key = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            let at = table
                .get_key_value(name)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span())
                .map(|span| Position::of(text, span.start));
            if let Some(inner) = item.as_table_like() {
                self.record(&key, inner, text, index);
            } else if let Some(tables) = item.as_array_of_tables() {
                for inner in tables {
                    self.record(&key, inner, text, index);
                }
            }
            // An implicit table (`[a.b]` makes `a`) has no span of its own: keep the
            // place an earlier file gave it, if any.
            match (at, self.origins.get(&key)) {
                (None, Some(&(_, Some(_)))) if item.is_table() => {}
                _ => {
                    self.origins.insert(key, (index, at));
                }
            }
        }
    }
}

/// Collects a build's [`KeyError`]s so one run reports them all.
#[derive(Debug)]
pub struct Collect<'a> {
    sources: &'a Sources,
    errors: Vec<ConfigError>,
}

impl<'a> Collect<'a> {
    pub fn new(sources: &'a Sources) -> Collect<'a> {
        Collect {
            sources,
            errors: Vec::new(),
        }
    }

    /// The value, or `None` with its error kept.
    pub fn take<T>(&mut self, result: Result<T, KeyError>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// Keeps an error.
    pub fn push(&mut self, error: KeyError) {
        self.errors.push(self.sources.invalid(error));
    }

    /// Everything collected, as one error (call when a value is missing).
    pub fn into_error(self) -> ConfigError {
        ConfigError::join(self.errors)
    }

    /// `Err` when anything was collected.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        Err(self.into_error())
    }
}

/// The drop-in folder of a config file: `agent.d/` beside `agent.toml`.
pub fn dropin_dir(path: &Path) -> PathBuf {
    path.with_extension("d")
}

/// What [`load_all`] read.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The configuration without the keys that had errors (their defaults instead);
    /// `None` when it could not be read at all.
    pub value: Option<T>,
    pub sources: Sources,
    /// Every error found, in file order.
    pub errors: Vec<ConfigError>,
    /// Keys taken out for their errors: later checks of these keys (or below them)
    /// would only repeat them.
    pub removed: Vec<String>,
}

impl<T> Loaded<T> {
    /// The value when there was no error; else every error, with those of `build`
    /// (the component checks, run on what could be read) after them, except those
    /// about keys already reported.
    pub fn build<S>(
        self,
        build: impl FnOnce(&T, &Sources) -> Result<S, ConfigError>,
    ) -> Result<(S, Sources), ConfigError> {
        let Loaded {
            value,
            sources,
            mut errors,
            removed,
        } = self;
        if let Some(value) = value {
            match build(&value, &sources) {
                Ok(built) if errors.is_empty() => return Ok((built, sources)),
                Ok(_) => {}
                Err(e) => errors.extend(e.into_errors().into_iter().filter(|e| {
                    !matches!(e, ConfigError::Invalid { key, .. } if removed.iter().any(|r| {
                        key == r || key.starts_with(&format!("{r}."))
                    }))
                })),
            }
        }
        Err(ConfigError::join(errors))
    }
}

/// Reads and parses a config file and its drop-ins (interpolation, syntax, key names
/// and types; no component checks): see [`load_all`]. The first of its errors, or
/// all of them, as one.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<(T, Sources), ConfigError> {
    let loaded = load_all(path);
    match loaded.value {
        Some(value) if loaded.errors.is_empty() => Ok((value, loaded.sources)),
        _ if loaded.errors.is_empty() => Err(ConfigError::Parse {
            path: path.to_path_buf(),
            at: None,
            message: "cannot be read as a configuration".into(),
        }),
        _ => Err(ConfigError::join(loaded.errors)),
    }
}

/// Reads a config file and its drop-ins, collecting every error.
///
/// Drop-ins are the `*.toml` files of [`dropin_dir`] (`/etc/picket/agent.d/`), merged
/// over the main file in byte order of their names: a table merges key by key, any
/// other value (a list too) replaces the one before. An error names the file (and
/// line) that set the key. Other files there (`.dpkg-old`, editor backups, hidden
/// files) are skipped. Each file's string values are interpolated first
/// ([`interpolate`]).
pub fn load_all<T: DeserializeOwned>(path: &Path) -> Loaded<T> {
    let mut errors = Vec::new();
    let mut files = vec![path.to_path_buf()];
    let dir = dropin_dir(path);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut dropins: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && !is_hidden(p))
                .collect();
            dropins.sort();
            files.extend(dropins);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => errors.push(ConfigError::Read { path: dir, source }),
    }
    let mut merged = toml::Table::new();
    let mut sources = Sources {
        files: files.clone(),
        origins: HashMap::new(),
    };
    let mut unreadable = false;
    let mut removed = Vec::new();
    for (index, file) in files.iter().enumerate() {
        match read_file(file, index, &mut sources, &mut removed) {
            Ok((table, mut found)) => {
                merge(&mut merged, table);
                errors.append(&mut found);
            }
            Err(mut found) => {
                unreadable |= found.iter().any(|e| matches!(e, ConfigError::Read { .. }));
                errors.append(&mut found);
            }
        }
    }
    if unreadable && files.len() == 1 {
        return Loaded {
            value: None,
            sources,
            errors,
            removed,
        };
    }
    let (value, mut found) = deserialize_collecting::<T>(merged, &sources, &mut removed);
    errors.append(&mut found);
    sort(&mut errors, &sources);
    Loaded {
        value,
        sources,
        errors,
        removed,
    }
}

/// Puts errors in the order an operator fixes them: file by file (the main file first),
/// then by line.
fn sort(errors: &mut [ConfigError], sources: &Sources) {
    errors.sort_by_key(|error| {
        let (path, at) = match error {
            ConfigError::Read { path, .. } => (path, None),
            ConfigError::Parse { path, at, .. } | ConfigError::Invalid { path, at, .. } => {
                (path, *at)
            }
            ConfigError::Several(_) => return (usize::MAX, 0, 0),
        };
        let file = sources
            .files
            .iter()
            .position(|f| f == path)
            .unwrap_or(usize::MAX);
        (file, at.map_or(0, |a| a.line), at.map_or(0, |a| a.column))
    });
}

/// One file: interpolated, parsed, its keys' places recorded. A key whose value could
/// not be interpolated is reported and left out (its default stands in, and no later
/// check repeats the error): it is added to `removed`.
fn read_file(
    file: &Path,
    index: usize,
    sources: &mut Sources,
    removed: &mut Vec<String>,
) -> Result<(toml::Table, Vec<ConfigError>), Vec<ConfigError>> {
    let text = std::fs::read_to_string(file).map_err(|source| {
        vec![ConfigError::Read {
            path: file.to_path_buf(),
            source,
        }]
    })?;
    let (text, problems) = interpolate(&text, |name| std::env::var(name).ok());
    let not_toml = |e: Option<std::ops::Range<usize>>, message: &str| {
        vec![ConfigError::Parse {
            path: file.to_path_buf(),
            at: e.map(|span| Position::of(&text, span.start)),
            message: format!("not TOML: {}", message.trim_end()),
        }]
    };
    let document =
        toml_edit::ImDocument::parse(text.as_str()).map_err(|e| not_toml(e.span(), e.message()))?;
    sources.record("", document.as_table(), &text, index);
    let mut table =
        toml::from_str::<toml::Table>(&text).map_err(|e| not_toml(e.span(), e.message()))?;
    let mut errors = Vec::new();
    for (at, message) in problems {
        // The key on the problem's line, in this file.
        let keys: Vec<String> = sources
            .origins
            .iter()
            .filter(|(_, (i, place))| *i == index && place.is_some_and(|p| p.line == at.line))
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            let segments: Vec<String> = key.split('.').map(str::to_string).collect();
            if remove(&mut table, &segments) {
                removed.push(key);
            }
        }
        errors.push(ConfigError::Parse {
            path: file.to_path_buf(),
            at: Some(at),
            message,
        });
    }
    Ok((table, errors))
}

/// Deserialises `table` as a `T`; each key serde refuses is reported, taken out, and
/// the rest read again. Returns the value (when one could be made) and the errors; the
/// keys taken out are added to `removed` (which holds those taken out before).
fn deserialize_collecting<T: DeserializeOwned>(
    mut table: toml::Table,
    sources: &Sources,
    removed: &mut Vec<String>,
) -> (Option<T>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    // Each round takes one key out; a file has fewer keys than this.
    for _ in 0..256 {
        let error =
            match serde_path_to_error::deserialize::<_, T>(toml::Value::Table(table.clone())) {
                Ok(value) => return (Some(value), errors),
                Err(error) => error,
            };
        let mut segments: Vec<String> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        let message = error.inner().message().to_string();
        let unknown = unknown_field(&message);
        if let Some((name, _)) = &unknown
            && segments.last() != Some(name)
        {
            segments.push(name.clone());
        }
        let key = segments.join(".");
        // A required key taken out for an error of its own: nothing new to say, and
        // nothing left to read.
        if message.starts_with("missing field")
            && removed
                .iter()
                .any(|r| message.contains(&format!("`{}`", r.rsplit('.').next().unwrap_or(r))))
        {
            break;
        }
        let message = match &unknown {
            Some((name, expected)) => unknown_message(name, expected),
            None => message,
        };
        errors.push(sources.invalid(KeyError::new(key.clone(), message)));
        if key.is_empty() || !remove(&mut table, &segments) {
            break;
        }
        removed.push(key);
    }
    (None, errors)
}

/// serde's `unknown field `x`, expected one of `a`, `b``: the field and the names it
/// expected.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

/// "unknown key", with the nearest known name when one is near.
fn unknown_message(name: &str, expected: &[String]) -> String {
    let nearest = expected
        .iter()
        .map(|known| (distance(name, known), known))
        .filter(|(d, known)| *d <= (known.len().max(name.len()) / 3).max(1))
        .min();
    let known = if expected.is_empty() {
        "this table takes no keys".to_string()
    } else {
        format!("known keys: {}", expected.join(", "))
    };
    match nearest {
        Some((_, known_name)) => format!("unknown key; did you mean `{known_name}`? ({known})"),
        None => format!("unknown key ({known})"),
    }
}

/// Edit distance (insertions, deletions, substitutions, adjacent swaps).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Takes the key at `segments` out of `table`; false when there is none.
fn remove(table: &mut toml::Table, segments: &[String]) -> bool {
    match segments {
        [] => false,
        [last] => table.remove(last).is_some(),
        [first, rest @ ..] => match table.get_mut(first) {
            Some(toml::Value::Table(inner)) => remove(inner, rest),
            _ => table.remove(first).is_some(),
        },
    }
}

/// Merges `over` into `base`: tables merge key by key, any other value (arrays
/// included) replaces what was there.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (name, value) in over {
        match (base.get_mut(&name), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                base.insert(name, value);
            }
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'))
}

/// Environment variables in a config file's text, by Vector's rules for the braced
/// form: `${VAR}` (an error when unset), `${VAR:-default}` (when unset or empty),
/// `${VAR-default}` (when unset), `${VAR:?message}` / `${VAR?message}` (an error with
/// the message when unset or empty / unset); `$${` is a literal `${`. A bare `$VAR` is
/// left alone (a `$` in a password stays), and so are comment lines. A value holding
/// a newline is refused (it could add keys). Returns the text and each problem's
/// position and description.
pub fn interpolate(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> (String, Vec<(Position, String)>) {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') || !line.contains("${") {
            out.push_str(line);
            offset += line.len();
            continue;
        }
        let mut rest = line;
        let mut at = offset;
        while let Some(found) = rest.find("${") {
            if found > 0 && rest.as_bytes()[found - 1] == b'$' {
                // `$${`: a literal `${`.
                out.push_str(&rest[..found - 1]);
                out.push_str("${");
                at += found + 2;
                rest = &rest[found + 2..];
                continue;
            }
            out.push_str(&rest[..found]);
            let position = Position::of(text, at + found);
            let inner = &rest[found + 2..];
            let Some(close) = inner.find('}') else {
                problems.push((position, "`${` without its closing `}`".to_string()));
                out.push_str(&rest[found..]);
                rest = "";
                break;
            };
            match substitute(&inner[..close], &env) {
                Ok(value) => out.push_str(&value),
                Err(message) => problems.push((position, message)),
            }
            at += found + 2 + close + 1;
            rest = &inner[close + 1..];
        }
        out.push_str(rest);
        offset += line.len();
    }
    (out, problems)
}

/// The value of one `${…}`'s inside.
fn substitute(inside: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let name_end = inside
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inside.len());
    let (name, operator) = inside.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "`${{{inside}}}` names no environment variable (letters, digits, _)"
        ));
    }
    let value = env(name);
    let value = match operator {
        "" => value.ok_or_else(|| {
            format!("environment variable {name} is not set (give a default: ${{{name}:-value}})")
        })?,
        _ if operator.starts_with(":-") => value
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| operator[2..].to_string()),
        _ if operator.starts_with('-') => value.unwrap_or_else(|| operator[1..].to_string()),
        _ if operator.starts_with(":?") => value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("environment variable {name}: {}", &operator[2..]))?,
        _ if operator.starts_with('?') => {
            value.ok_or_else(|| format!("environment variable {name}: {}", &operator[1..]))?
        }
        _ => {
            return Err(format!(
                "`${{{inside}}}`: after the name comes `}}`, `:-`, `-`, `:?` or `?`"
            ));
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable {name} holds a line break, which a config value may not"
        ));
    }
    Ok(value)
}

/// `Err` naming `key` when `value` is 0.
pub fn at_least_one(key: &str, value: u64) -> Result<(), KeyError> {
    if value == 0 {
        return Err(KeyError::new(key, "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
