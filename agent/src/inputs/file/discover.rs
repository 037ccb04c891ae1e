//! Which files the file input follows: the configured `paths` (globs allowed) less
//! `exclude`, found by walking each pattern's literal base directory no deeper than the
//! pattern reaches (`**` reaches everywhere below). Gzip-rotated files (`*.gz`) are
//! left out unless `read_gzip` is set.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use thiserror::Error;

/// The compiled `paths` and `exclude`.
#[derive(Debug, Clone)]
pub struct Discovery {
    patterns: Vec<Pattern>,
    exclude: GlobSet,
    read_gzip: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The directory to walk (the pattern's components before the first glob).
    base: PathBuf,
    /// How many components below `base` a match may be; `None` for `**`.
    depth: Option<usize>,
    matcher: globset::GlobMatcher,
    /// A pattern without glob characters names one file.
    literal: Option<PathBuf>,
}

/// Why the patterns do not compile.
#[derive(Debug, Error)]
pub enum PatternError {
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
    #[error("{0:?}: `..` is not allowed in a pattern")]
    ParentDir(String),
    #[error("{pattern:?}: {source}")]
    Glob {
        pattern: String,
        source: globset::Error,
    },
    #[error("exclude pattern {pattern:?}: {source}")]
    Exclude {
        pattern: String,
        source: globset::Error,
    },
}

impl PatternError {
    /// Whether an `exclude` pattern is at fault (else one of `paths`).
    pub fn in_exclude(&self) -> bool {
        matches!(self, PatternError::Exclude { .. })
    }
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

fn has_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

impl Discovery {
    /// Compiles the patterns; they must be absolute.
    pub fn build(
        paths: &[PathBuf],
        exclude: &[String],
        read_gzip: bool,
    ) -> Result<Discovery, PatternError> {
        let mut patterns = Vec::with_capacity(paths.len());
        for path in paths {
            let text = path.to_string_lossy();
            if !path.is_absolute() {
                return Err(PatternError::NotAbsolute(text.into_owned()));
            }
            let mut base = PathBuf::new();
            let mut below = 0usize;
            let mut globbed = false;
            let mut deep = false;
            for component in path.components() {
                let part = component.as_os_str().to_string_lossy();
                if !globbed && !has_glob(&part) {
                    base.push(component.as_os_str());
                    continue;
                }
                globbed = true;
                below += 1;
                deep |= part.contains("**");
                if matches!(component, Component::ParentDir) {
                    return Err(PatternError::ParentDir(text.into_owned()));
                }
            }
            let literal = (!globbed).then(|| path.clone());
            if literal.is_some() {
                base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                below = 1;
            }
            patterns.push(Pattern {
                base,
                depth: (!deep).then_some(below),
                matcher: glob(&text)
                    .map_err(|source| PatternError::Glob {
                        pattern: text.to_string(),
                        source,
                    })?
                    .compile_matcher(),
                literal,
            });
        }
        let mut set = GlobSetBuilder::new();
        fn excluded(pattern: &str) -> impl FnOnce(globset::Error) -> PatternError {
            let pattern = pattern.to_string();
            move |source| PatternError::Exclude { pattern, source }
        }
        for pattern in exclude {
            set.add(glob(pattern).map_err(excluded(pattern))?);
        }
        let exclude = set.build().map_err(excluded(&exclude.join(", ")))?;
        Ok(Discovery {
            patterns,
            exclude,
            read_gzip,
        })
    }

    /// Whether `path` is one the input should follow.
    pub fn wants(&self, path: &Path) -> bool {
        if self.exclude.is_match(path) {
            return false;
        }
        if !self.read_gzip && path.extension().is_some_and(|e| e == "gz") {
            return false;
        }
        self.patterns.iter().any(|p| p.matcher.is_match(path))
    }

    /// Every regular file the patterns match now, sorted, without duplicates.
    pub fn scan(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for pattern in &self.patterns {
            if let Some(literal) = &pattern.literal {
                if literal.is_file() && self.wants(literal) {
                    found.push(literal.clone());
                }
                continue;
            }
            walk(&pattern.base, pattern.depth, &mut |path| {
                if pattern.matcher.is_match(path) && self.wants(path) {
                    found.push(path.to_path_buf());
                }
            });
        }
        found.sort();
        found.dedup();
        found
    }

    /// The patterns that name one file each (no glob characters).
    pub fn literal_paths(&self) -> impl Iterator<Item = &Path> {
        self.patterns.iter().filter_map(|p| p.literal.as_deref())
    }

    /// The directories to watch for changes, each with whether its subdirectories
    /// must be watched too: each pattern's base (for literal paths, the file's
    /// directory), recursively only when the pattern reaches below it (`**`, or a
    /// wildcard in a directory name). `/var/log/auth.log` watches `/var/log` alone, not
    /// the busy `/var/log/journal` under it.
    pub fn watch_dirs(&self) -> Vec<(PathBuf, bool)> {
        let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
        for pattern in &self.patterns {
            let recursive = pattern.depth.is_none_or(|d| d > 1);
            match dirs.iter_mut().find(|(dir, _)| *dir == pattern.base) {
                Some((_, r)) => *r |= recursive,
                None => dirs.push((pattern.base.clone(), recursive)),
            }
        }
        dirs.sort();
        dirs
    }
}

/// Calls `visit` for every regular file under `dir`, at most `depth` levels down.
fn walk(dir: &Path, depth: Option<usize>, visit: &mut dyn FnMut(&Path)) {
    if depth == Some(0) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            visit(&path);
        } else if kind.is_dir() {
            walk(&path, depth.map(|d| d - 1), visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn globs_literals_and_exclusions_pick_the_right_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "auth.log",
            "syslog",
            "kern.log",
            "auth.log.1",
            "auth.log.2.gz",
            "app/x.log",
            "app/deep/y.log",
        ] {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x\n").unwrap();
        }
        let paths = |list: &[&str]| list.iter().map(|p| root.join(p)).collect::<Vec<_>>();
        let names = |found: Vec<PathBuf>| {
            found
                .iter()
                .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().to_string())
                .collect::<Vec<_>>()
        };

        let d = Discovery::build(&paths(&["*.log", "syslog", "missing.log"]), &[], false).unwrap();
        assert_eq!(names(d.scan()), ["auth.log", "kern.log", "syslog"]);

        let exclude = vec![format!("{}/kern*", root.display())];
        let d = Discovery::build(&paths(&["*.log"]), &exclude, false).unwrap();
        assert_eq!(names(d.scan()), ["auth.log"]);

        let d = Discovery::build(&paths(&["auth.log*"]), &[], false).unwrap();
        assert_eq!(names(d.scan()), ["auth.log", "auth.log.1"]);
        let d = Discovery::build(&paths(&["auth.log*"]), &[], true).unwrap();
        assert_eq!(names(d.scan()), ["auth.log", "auth.log.1", "auth.log.2.gz"]);

        let d = Discovery::build(&paths(&["*/*.log"]), &[], false).unwrap();
        assert_eq!(names(d.scan()), ["app/x.log"]);
        let d = Discovery::build(&paths(&["**/*.log"]), &[], false).unwrap();
        assert_eq!(
            names(d.scan()),
            ["app/deep/y.log", "app/x.log", "auth.log", "kern.log"]
        );

        assert!(Discovery::build(&[PathBuf::from("relative/*.log")], &[], false).is_err());
        assert!(Discovery::build(&paths(&["[bad"]), &[], false).is_err());
    }

    #[test]
    fn only_patterns_that_reach_below_their_base_watch_recursively() {
        let d = |list: &[&str]| {
            let paths: Vec<PathBuf> = list.iter().map(PathBuf::from).collect();
            Discovery::build(&paths, &[], false).unwrap().watch_dirs()
        };
        let flat = |dir: &str, recursive: bool| (PathBuf::from(dir), recursive);
        assert_eq!(
            d(&["/var/log/auth.log", "/var/log/secure"]),
            vec![flat("/var/log", false)]
        );
        assert_eq!(d(&["/var/log/*.log"]), vec![flat("/var/log", false)]);
        assert_eq!(d(&["/var/log/*/access.log"]), vec![flat("/var/log", true)]);
        assert_eq!(
            d(&["/srv/**/*.log", "/var/log/auth.log"]),
            vec![flat("/srv", true), flat("/var/log", false)]
        );
        assert_eq!(
            d(&["/var/log/auth.log", "/var/log/**/*.log"]),
            vec![flat("/var/log", true)]
        );
    }
}
