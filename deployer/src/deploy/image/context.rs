//! The build context: a tar of the context directory minus what `.dockerignore` excludes,
//! with Docker's semantics (not gitignore's): patterns are relative to the context root,
//! `*` and `?` stay within one path segment, `**` spans any number of them, a pattern that
//! matches a directory excludes everything under it, `!` re-includes, and the last matching
//! pattern wins. Excluded directories are not even walked unless a `!` pattern could
//! re-include something inside them (a context with a big `target/` stays fast).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// One `.dockerignore` line, compiled.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    exclusion: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**`: any run of characters, `/` included.
    DoubleStar,
    /// `**/`: nothing, or any run of characters ending with `/`.
    DoubleStarSlash,
    /// `[...]`: a character class (ranges as pairs), possibly negated.
    Class(bool, Vec<(char, char)>),
}

/// The rules of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parses `.dockerignore` text: comments (`#`) and blank lines skipped, paths cleaned.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut patterns = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(body);
            if cleaned.is_empty() {
                continue;
            }
            let tokens = compile(&cleaned)
                .with_context(|| format!(".dockerignore line {}: {line}", number + 1))?;
            patterns.push(Pattern {
                text: cleaned,
                exclusion,
                tokens,
            });
        }
        Ok(Self { patterns })
    }

    /// Reads `<context>/.dockerignore`, if any.
    pub fn load(context: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(context.join(".dockerignore")) {
            Ok(text) => Self::parse(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(err).context("reading .dockerignore"),
        }
    }

    /// Whether `path` (relative, `/`-separated) is excluded: the last pattern that matches it
    /// or one of its parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            let hit =
                matches(&p.tokens, path) || parents(path).any(|parent| matches(&p.tokens, parent));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether an excluded directory must still be walked because a `!` pattern may
    /// re-include something below it (Docker's rule: the pattern starts with `dir/`).
    fn may_reinclude_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.text).starts_with(&prefix))
    }
}

/// "a/b/c" -> "a", "a/b".
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Like Go's filepath.Clean plus Docker's leading-slash strip: "/a//b/./c/" -> "a/b/c".
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn compile(pattern: &str) -> anyhow::Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    tokens.push(Token::DoubleStarSlash);
                } else {
                    tokens.push(Token::DoubleStar);
                }
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => match chars.next() {
                Some(escaped) => tokens.push(Token::Char(escaped)),
                None => anyhow::bail!("pattern ends with a lone '\\'"),
            },
            '[' => {
                let negated = matches!(chars.peek(), Some('^' | '!'));
                if negated {
                    chars.next();
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == ']' && !ranges.is_empty() {
                        closed = true;
                        break;
                    }
                    let lo = if c == '\\' {
                        chars.next().context("unterminated character class")?
                    } else {
                        c
                    };
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        let hi = chars.next().context("unterminated character range")?;
                        ranges.push((lo, hi));
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                anyhow::ensure!(closed, "unterminated character class");
                tokens.push(Token::Class(negated, ranges));
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    Ok(tokens)
}

/// Matches the whole of `path` against the tokens (backtracking; patterns are short).
fn matches(tokens: &[Token], path: &str) -> bool {
    let chars: Vec<char> = path.chars().collect();
    match_at(tokens, &chars)
}

fn match_at(tokens: &[Token], path: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return path.is_empty();
    };
    match first {
        Token::DoubleStarSlash => {
            match_at(rest, path)
                || (0..path.len())
                    .filter(|&i| path[i] == '/')
                    .any(|i| match_at(rest, &path[i + 1..]))
        }
        Token::DoubleStar => (0..=path.len()).any(|i| match_at(rest, &path[i..])),
        Token::Star => {
            let end = path.iter().position(|&c| c == '/').unwrap_or(path.len());
            (0..=end).any(|i| match_at(rest, &path[i..]))
        }
        Token::One => path.first().is_some_and(|&c| c != '/') && match_at(rest, &path[1..]),
        Token::Class(negated, ranges) => path.first().is_some_and(|&c| {
            c != '/'
                && ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated
                && match_at(rest, &path[1..])
        }),
        Token::Char(c) => path.first() == Some(c) && match_at(rest, &path[1..]),
    }
}

/// The build context as an uncompressed tar, and how many files it holds.
pub struct Context {
    pub tar: Vec<u8>,
    pub files: usize,
}

/// Tars `dir` for a build, honouring its `.dockerignore`. The Dockerfile is always sent
/// (as Docker does), even if a pattern excludes it.
pub fn tar(dir: &Path, dockerfile: &str) -> anyhow::Result<Context> {
    let ignore = Ignore::load(dir)?;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut files = 0;
    let dockerfile = clean(dockerfile);
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&full)
            .with_context(|| format!("reading {}", full.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", full.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel_path = rel.join(entry.file_name());
            let name = rel_path.to_string_lossy().replace('\\', "/");
            let kind = entry.file_type()?;
            let excluded = ignore.excludes(&name) && name != dockerfile;
            if kind.is_dir() {
                if !excluded {
                    builder
                        .append_dir(&rel_path, entry.path())
                        .with_context(|| format!("adding {name} to the build context"))?;
                    stack.push(rel_path);
                } else if ignore.may_reinclude_under(&name) {
                    stack.push(rel_path);
                }
            } else if !excluded {
                builder
                    .append_path_with_name(entry.path(), &rel_path)
                    .with_context(|| format!("adding {name} to the build context"))?;
                files += 1;
            }
        }
    }
    let tar = builder
        .into_inner()
        .context("finishing the build context")?;
    Ok(Context { tar, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text).expect("valid patterns")
    }

    #[test]
    fn patterns_are_anchored_at_the_context_root() {
        let rules = ignore("foo\n");
        assert!(rules.excludes("foo"));
        assert!(
            rules.excludes("foo/bar.txt"),
            "a directory excludes its content"
        );
        assert!(
            !rules.excludes("src/foo"),
            "unlike gitignore, not at any depth"
        );
        assert!(
            ignore("/foo/").excludes("foo/x"),
            "leading and trailing slashes cleaned"
        );
    }

    #[test]
    fn stars_stay_within_a_segment_and_double_stars_do_not() {
        let rules = ignore("*.md\n");
        assert!(rules.excludes("README.md"));
        assert!(!rules.excludes("docs/guide.md"));
        let rules = ignore("**/*.md\n");
        assert!(rules.excludes("README.md"), "**/ matches no directory too");
        assert!(rules.excludes("docs/deep/guide.md"));
        assert!(ignore("docs/**\n").excludes("docs/a/b"));
        assert!(ignore("a/**/z\n").excludes("a/z"));
        assert!(ignore("a/**/z\n").excludes("a/b/c/z"));
        assert!(ignore("file?.txt\n").excludes("file1.txt"));
        assert!(!ignore("file?.txt\n").excludes("file10.txt"));
        assert!(ignore("[a-c]x\n").excludes("bx"));
        assert!(!ignore("[^a-c]x\n").excludes("bx"));
    }

    #[test]
    fn exceptions_reinclude_and_the_last_match_wins() {
        let rules = ignore("# the repo's own rules\n*\n!Dockerfile\n!target/image\n");
        assert!(rules.excludes("server/src/main.rs"));
        assert!(rules.excludes("target/debug/wsctl"));
        assert!(!rules.excludes("Dockerfile"));
        assert!(!rules.excludes("target/image/ws-server"));
        assert!(rules.may_reinclude_under("target"));
        assert!(!rules.may_reinclude_under("target/debug"));

        let rules = ignore("*.log\n!keep.log\nkeep.log\n");
        assert!(
            rules.excludes("keep.log"),
            "a later pattern overrides the exception"
        );
    }

    #[test]
    fn the_tar_holds_what_is_not_ignored_and_skips_excluded_trees() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for (path, body) in [
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*\n!Dockerfile\n!out/image\n"),
            ("src/main.rs", "fn main() {}\n"),
            ("out/image/app", "binary"),
            ("out/debug/big", "x"),
        ] {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(file, body).expect("write");
        }
        let ctx = tar(root, "Dockerfile").expect("tar");
        let mut archive = tar::Archive::new(ctx.tar.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile", "out/image", "out/image/app"]);
        assert_eq!(ctx.files, 2);
    }
}
