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
                for (i, inner) in tables.iter().enumerate() {
                    let entry = format!("{key}[{i}]");
                    let at = inner.span().map(|span| Position::of(text, span.start));
                    self.origins.insert(entry.clone(), (index, at));
                    self.record(&entry, inner, text, index);
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
pub fn load<T: DeserializeOwned>(
    path: &Path,
    own: Option<&str>,
) -> Result<(T, Sources), ConfigError> {
    let loaded = load_all(path, own);
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
/// ([`interpolate`]); `own`: the program's top-level table (`agent`), when others in
/// the file are another program's (whose `${VAR}`s need not be set here).
pub fn load_all<T: DeserializeOwned>(path: &Path, own: Option<&str>) -> Loaded<T> {
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
    // A file that could not be read leaves the merged table short of its keys.
    let mut broken = false;
    let mut removed = Vec::new();
    for (index, file) in files.iter().enumerate() {
        match read_file(file, index, own, &mut sources, &mut removed) {
            Ok((table, mut found)) => {
                merge(&mut merged, table);
                errors.append(&mut found);
            }
            Err(mut found) => {
                unreadable |= found.iter().any(|e| matches!(e, ConfigError::Read { .. }));
                broken = true;
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
    let (value, mut found) = deserialize_collecting::<T>(merged, &sources, &mut removed, broken);
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
/// check repeats the error): it is added to `removed`. Outside the `own` table (the
/// other program's, in a file both read) such a value is left as written, unreported.
fn read_file(
    file: &Path,
    index: usize,
    own: Option<&str>,
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
    let problem = |at: Position, message: String| ConfigError::Parse {
        path: file.to_path_buf(),
        at: Some(at),
        message,
    };
    let not_toml = |span: Option<std::ops::Range<usize>>, message: &str| {
        let at = span.map(|span| Position::of(&text, span.start));
        // `port = ${PORT}` with PORT unset is no TOML: the variable is the news.
        let mut errors: Vec<ConfigError> = problems
            .iter()
            .map(|(at, message)| problem(*at, message.clone()))
            .collect();
        if !problems
            .iter()
            .any(|(p, _)| at.is_some_and(|at| at.line == p.line))
        {
            errors.push(ConfigError::Parse {
                path: file.to_path_buf(),
                at,
                message: format!("not TOML: {}", message.trim_end()),
            });
        }
        errors
    };
    let document =
        toml_edit::ImDocument::parse(text.as_str()).map_err(|e| not_toml(e.span(), e.message()))?;
    sources.record("", document.as_table(), &text, index);
    let mut table =
        toml::from_str::<toml::Table>(&text).map_err(|e| not_toml(e.span(), e.message()))?;
    let mut errors = Vec::new();
    for (at, message) in problems {
        // The deepest key set on the problem's line, in this file: the value's.
        let key = sources
            .origins
            .iter()
            .filter(|(_, (i, place))| *i == index && place.is_some_and(|p| p.line == at.line))
            .map(|(key, _)| key.clone())
            .max_by_key(|key| (key.matches('.').count(), key.len()));
        if let (Some(key), Some(own)) = (&key, own)
            && key.split(['.', '[']).next() != Some(own)
        {
            continue;
        }
        if let Some(key) = key
            && remove_at(&mut table, &parse_dotted(&key))
        {
            removed.push(key);
        }
        errors.push(problem(at, message));
    }
    Ok((table, errors))
}

/// `a.b[2].c` as its steps.
fn parse_dotted(key: &str) -> Vec<Seg> {
    let mut segments = Vec::new();
    for part in key.split('.') {
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next() {
            segments.push(Seg::Key(name.to_string()));
        }
        for index in pieces {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                segments.push(Seg::Index(i));
            }
        }
    }
    segments
}

/// Deserialises `table` as a `T`; each key serde refuses is reported, taken out, and
/// the rest read again. Returns the value (when one could be made) and the errors; the
/// keys taken out are added to `removed` (which holds those taken out before).
fn deserialize_collecting<T: DeserializeOwned>(
    mut table: toml::Table,
    sources: &Sources,
    removed: &mut Vec<String>,
    broken: bool,
) -> (Option<T>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    // Each round takes one key out; a file has fewer keys than this.
    for _ in 0..256 {
        let error =
            match serde_path_to_error::deserialize::<_, T>(toml::Value::Table(table.clone())) {
                Ok(value) => return (Some(value), errors),
                Err(error) => error,
            };
        let mut segments: Vec<Seg> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                _ => None,
            })
            .collect();
        let message = error.inner().message().to_string();
        let unknown = unknown_field(&message);
        if let Some((name, _)) = &unknown
            && segments.last() != Some(&Seg::Key(name.clone()))
        {
            segments.push(Seg::Key(name.clone()));
        }
        let key = dotted(&segments);
        let missing = missing_field(&message).map(str::to_string);
        if let Some(field) = &missing {
            let full = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            // A required key taken out for an error of its own, or the table of a
            // file that is no TOML: nothing new to say, and nothing left to read.
            if broken || removed.contains(&full) {
                break;
            }
        }
        let suggestion = unknown
            .as_ref()
            .and_then(|(name, expected)| nearest(name, expected).map(str::to_string));
        let message = match &unknown {
            Some((name, expected)) => unknown_message(name, expected),
            None => message,
        };
        errors.push(sources.invalid(KeyError::new(key.clone(), message)));
        // An entry of an array of tables that lacks a key cannot be taken out without
        // renumbering the entries after it: stop there.
        if key.is_empty() || (missing.is_some() && matches!(segments.last(), Some(Seg::Index(_)))) {
            break;
        }
        // A typo's value goes on under the name it was surely meant to have (when that
        // one is not set too), so the table is read on as intended.
        let renamed = suggestion.is_some_and(|name| rename_at(&mut table, &segments, &name));
        if !renamed && !remove_at(&mut table, &segments) {
            break;
        }
        removed.push(key);
    }
    (None, errors)
}

/// Moves the value at `segments` to its sibling `name`, when that one is not set.
fn rename_at(table: &mut toml::Table, segments: &[Seg], name: &str) -> bool {
    let Some((Seg::Key(last), parent)) = segments.split_last() else {
        return false;
    };
    let Some(at) = table_at(table, parent) else {
        return false;
    };
    if at.contains_key(name) {
        return false;
    }
    match at.remove(last) {
        Some(value) => {
            at.insert(name.to_string(), value);
            true
        }
        None => false,
    }
}

/// The table at `segments` (through arrays' entries too).
fn table_at<'a>(table: &'a mut toml::Table, segments: &[Seg]) -> Option<&'a mut toml::Table> {
    match segments {
        [] => Some(table),
        [Seg::Key(key), rest @ ..] => value_table(table.get_mut(key)?, rest),
        _ => None,
    }
}

fn value_table<'a>(value: &'a mut toml::Value, segments: &[Seg]) -> Option<&'a mut toml::Table> {
    match (value, segments) {
        (toml::Value::Table(table), rest) => table_at(table, rest),
        (toml::Value::Array(items), [Seg::Index(i), rest @ ..]) => {
            value_table(items.get_mut(*i)?, rest)
        }
        _ => None,
    }
}

/// One step of a key's path: a table's key, or an array's index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `a.b[2].c`.
fn dotted(segments: &[Seg]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// serde's `missing field `x``: the field.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(field, _)| field)
}

/// Takes the value at `segments` out of `table` (an array's element too); false when
/// there is none.
fn remove_at(table: &mut toml::Table, segments: &[Seg]) -> bool {
    fn in_value(value: &mut toml::Value, rest: &[Seg]) -> bool {
        match (value, rest) {
            (toml::Value::Table(table), _) => remove_at(table, rest),
            (toml::Value::Array(items), [Seg::Index(i)]) if *i < items.len() => {
                items.remove(*i);
                true
            }
            (toml::Value::Array(items), [Seg::Index(i), more @ ..]) => {
                items.get_mut(*i).is_some_and(|item| in_value(item, more))
            }
            _ => false,
        }
    }
    match segments {
        [Seg::Key(last)] => table.remove(last).is_some(),
        [Seg::Key(first), rest @ ..] => match table.get_mut(first).map(|v| in_value(v, rest)) {
            Some(true) => true,
            // The path goes where the value has no room: the key itself is wrong.
            Some(false) => table.remove(first).is_some(),
            None => false,
        },
        _ => false,
    }
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

/// The known name nearest `name`, when one is near.
fn nearest<'a>(name: &str, expected: &'a [String]) -> Option<&'a str> {
    expected
        .iter()
        .map(|known| (distance(name, known), known))
        .filter(|(d, known)| *d <= (known.len().max(name.len()) / 3).max(1))
        .min()
        .map(|(_, known)| known.as_str())
}

/// "unknown key", with the nearest known name when one is near.
fn unknown_message(name: &str, expected: &[String]) -> String {
    let nearest = nearest(name, expected);
    let known = if expected.is_empty() {
        "this table takes no keys".to_string()
    } else {
        format!("known keys: {}", expected.join(", "))
    };
    match nearest {
        Some(known_name) => format!("unknown key; did you mean `{known_name}`? ({known})"),
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
                Err(message) => {
                    // Left as written: the other program's table may hold it (one file
                    // for both), and its key is taken out if it is this program's.
                    out.push_str(&rest[found..found + 2 + close + 1]);
                    problems.push((position, message));
                }
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
