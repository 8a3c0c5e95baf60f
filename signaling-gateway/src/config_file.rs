//! `salon.toml`: every command-line flag of `salon`, from a file, with
//! environment variables over it and flags over both.
//!
//! The file is flat: one key per flag, named as the flag without its
//! leading dashes (`media-port` or `media_port`), with TOML values — a
//! string, integer, float or boolean, or an array for a flag that may be
//! repeated. Precedence, lowest first: the built-in default, the file,
//! `SALON_<FLAG>` (upper case, dashes as underscores: `SALON_MEDIA_PORT`),
//! the command line. It is built on the flags' own definitions (clap), so a
//! new flag is a new key with nothing else to write; the sample file
//! (`deploy/salon.toml`) is checked against them by a test.
//!
//! Errors name the file and line: an unknown key (with the closest known
//! one), a value the flag refuses, a table where a value belongs.
//! [`effective`] renders what the process would run with, secrets redacted
//! (`salon config check`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// The prefix of the environment variables naming flags.
pub const ENV_PREFIX: &str = "SALON_";

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key that names no flag.
    #[error("{path}:{line}: unknown key `{key}`{hint}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The key as written.
        key: String,
        /// ` (did you mean `…`?)` or empty.
        hint: String,
    },
    /// A value the flag refuses (or of a shape it cannot take).
    #[error("{path}:{line}: `{key}`: {message}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
}

/// One flag's values from the file, and where they were written.
#[derive(Debug, Clone)]
struct Entry {
    values: Vec<String>,
    line: usize,
}

/// The flags a configuration file sets, checked against a command.
#[derive(Debug, Clone, Default)]
pub struct FileValues {
    path: Option<PathBuf>,
    /// By argument id.
    entries: BTreeMap<String, Entry>,
}

impl FileValues {
    /// No file.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads and checks `path` against `cmd`'s top-level arguments.
    pub fn load(path: &Path, cmd: &Command) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, cmd)
    }

    /// Checks the TOML `text` (read from `path`) against `cmd`.
    pub fn parse(path: &Path, text: &str, cmd: &Command) -> Result<Self, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let table: BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>> =
            toml::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                line: e.span().map_or(1, |s| line_of(s.start)),
                message: e.message().to_owned(),
            })?;
        let known: Vec<&clap::Arg> = settable(cmd).collect();
        let mut entries = BTreeMap::new();
        for (key, value) in table {
            let line = line_of(key.span().start);
            let name = key.get_ref().replace('_', "-");
            let Some(arg) = known.iter().find(|a| flag_name(a) == name) else {
                let names: Vec<String> = known.iter().map(|a| flag_name(a)).collect();
                let hint = closest(&name, names.iter().map(String::as_str))
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                return Err(ConfigError::UnknownKey {
                    path: path.to_owned(),
                    line,
                    key: key.into_inner(),
                    hint,
                });
            };
            let bad = |message: String| ConfigError::BadValue {
                path: path.to_owned(),
                line: line_of(value.span().start),
                key: key.get_ref().clone(),
                message,
            };
            let values = match value.get_ref() {
                toml::Value::Array(items) => {
                    if !takes_many(arg) {
                        return Err(bad("one value expected, not an array".into()));
                    }
                    items.iter().map(scalar).collect::<Option<Vec<_>>>()
                }
                v => scalar(v).map(|s| vec![s]),
            }
            .ok_or_else(|| bad("a string, number or boolean expected".into()))?;
            for v in &values {
                check_value(arg, v).map_err(bad)?;
            }
            entries.insert(arg.get_id().to_string(), Entry { values, line });
        }
        Ok(Self {
            path: Some(path.to_owned()),
            entries,
        })
    }

    /// `cmd` with the file's values as defaults and `SALON_<FLAG>` read for
    /// every top-level flag.
    pub fn apply(&self, cmd: Command) -> Command {
        let args: Vec<(String, String)> = settable(&cmd)
            .map(|a| (a.get_id().to_string(), env_name(a)))
            .collect();
        let mut cmd = cmd;
        for (id, env) in args {
            let entry = self.entries.get(&id).cloned();
            cmd = cmd.mut_arg(id.as_str(), move |arg| {
                // A repeatable flag's variable holds a comma-separated list
                // (`SALON_ANNOUNCE_IP=203.0.113.10,2001:db8::10`): one
                // variable is all an environment can give it.
                let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
                let arg = arg.env(env);
                let arg = if repeatable {
                    arg.value_delimiter(',')
                } else {
                    arg
                };
                match entry {
                    Some(e) => arg.default_values(e.values),
                    None => arg,
                }
            });
        }
        cmd
    }
}

/// When clap refused a value that came from a `SALON_*` variable (not on
/// the command line `argv`; the file's values are checked at load), a
/// line saying so: clap names only the flag.
pub fn env_source(cmd: &Command, err: &clap::Error, argv: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let on_line = argv.iter().any(|a| {
        a.to_str().is_some_and(|a| {
            a.strip_prefix("--")
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        })
    });
    if on_line {
        return None;
    }
    let flag = settable(cmd).find(|a| a.get_long() == Some(long))?;
    let env = env_name(flag);
    std::env::var_os(&env)?;
    Some(format!(
        "salon: that value comes from the environment variable {env}"
    ))
}

/// The flag's name without its dashes (`media-port`): the file's key.
fn flag_name(arg: &clap::Arg) -> String {
    arg.get_long()
        .map_or_else(|| arg.get_id().as_str().replace('_', "-"), str::to_owned)
}

/// `SALON_MEDIA_PORT` for `--media-port`.
fn env_name(arg: &clap::Arg) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag_name(arg).replace('-', "_").to_uppercase()
    )
}

/// The top-level arguments a file may set (not help, version or
/// subcommands).
fn settable(cmd: &Command) -> impl Iterator<Item = &clap::Arg> {
    cmd.get_arguments().filter(|a| {
        !a.is_positional()
            && a.get_id() != "config"
            && !matches!(
                a.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            )
    })
}

/// Whether `arg` takes `v`, checked by the flag's own parser.
fn check_value(arg: &clap::Arg, v: &str) -> Result<(), String> {
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return match v {
            "true" | "false" => Ok(()),
            _ => Err(format!("`{v}`: true or false expected")),
        };
    }
    let long = arg.get_long().unwrap_or(arg.get_id().as_str());
    let probe = Command::new("salon")
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    probe
        .try_get_matches_from([OsStr::new(&format!("--{long}")), OsStr::new(v)])
        .map(drop)
        .map_err(|e| first_line(&e.to_string()))
}

fn takes_many(arg: &clap::Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// The known key nearest `key` (edit distance ≤ 3).
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (distance(key, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The configuration file named by `--config <path>` / `--config=<path>`
/// in `args`, else by `SALON_CONFIG`.
pub fn config_path(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
        if a == "--" {
            break;
        }
    }
    std::env::var_os(format!("{ENV_PREFIX}CONFIG")).map(PathBuf::from)
}

/// Whether a flag's value is a secret (never printed): its name says
/// secret, password or token, and it is not a path to one.
pub fn is_secret(name: &str) -> bool {
    let id = name.to_ascii_lowercase().replace('-', "_");
    ["secret", "password", "passwd", "token", "credential"]
        .iter()
        .any(|w| id.contains(w))
        && !["_file", "_path", "_dir"].iter().any(|s| id.ends_with(s))
}

/// The effective configuration as TOML, one line per flag with where its
/// value came from; secrets redacted.
pub fn effective(cmd: &Command, matches: &ArgMatches, file: &FileValues) -> String {
    let mut out = String::new();
    let path = file
        .path
        .as_ref()
        .map_or_else(|| "(no file)".to_owned(), |p| p.display().to_string());
    let _ = writeln!(out, "# effective configuration — file: {path}");
    for arg in settable(cmd) {
        let id = arg.get_id().as_str();
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "command line".to_owned(),
            Some(ValueSource::EnvVariable) => format!("environment {}", env_name(arg)),
            Some(ValueSource::DefaultValue) => match file.entries.get(id) {
                Some(e) => format!("{path}:{}", e.line),
                None => "default".to_owned(),
            },
            _ => "unset".to_owned(),
        };
        let key = flag_name(arg);
        let value = if raw.is_empty() {
            None
        } else if is_secret(&key) {
            Some("\"<redacted>\"".to_owned())
        } else if takes_many(arg) {
            Some(format!(
                "[{}]",
                raw.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
            ))
        } else {
            raw.first().map(|v| quote(v))
        };
        match value {
            Some(v) => {
                let _ = writeln!(out, "{key} = {v}  # {source}");
            }
            None => {
                let _ = writeln!(out, "# {key} is not set  # {source}");
            }
        }
    }
    out
}

/// A TOML literal for `v`: numbers and booleans bare, the rest quoted.
fn quote(v: &str) -> String {
    if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
        v.to_owned()
    } else {
        toml::Value::String(v.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cmd() -> Command {
        Command::new("t")
            .arg(
                Arg::new("media_port")
                    .long("media-port")
                    .default_value("10000")
                    .value_parser(clap::value_parser!(u16)),
            )
            .arg(
                Arg::new("allowed_host")
                    .long("allowed-host")
                    .action(ArgAction::Append),
            )
            .arg(
                Arg::new("redirect_http")
                    .long("redirect-http")
                    .action(ArgAction::SetTrue),
            )
            .arg(Arg::new("turn_secret").long("turn-secret"))
            .arg(Arg::new("turn_secret_file").long("turn-secret-file"))
    }

    #[test]
    fn unknown_keys_name_their_line_and_the_nearest_flag() {
        let e = FileValues::parse(
            Path::new("s.toml"),
            "# c\nmedia-port = 1\nmedai-port = 2\n",
            &cmd(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.toml:3: unknown key `medai-port` (did you mean `media-port`?)"
        );
    }

    #[test]
    fn values_are_checked_by_the_flag_itself() {
        let e =
            FileValues::parse(Path::new("s.toml"), "\n\nmedia-port = 70000\n", &cmd()).unwrap_err();
        assert!(e.to_string().starts_with("s.toml:3: `media-port`:"), "{e}");
        let e =
            FileValues::parse(Path::new("s.toml"), "media-port = [1, 2]\n", &cmd()).unwrap_err();
        assert!(e.to_string().contains("not an array"), "{e}");
        let e = FileValues::parse(Path::new("s.toml"), "[media]\nport = 1\n", &cmd()).unwrap_err();
        assert!(e.to_string().contains("unknown key `media`"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_but_not_their_paths() {
        assert!(is_secret("turn_secret"));
        assert!(!is_secret("turn_secret_file"));
        let file = FileValues::parse(
            Path::new("s.toml"),
            "turn-secret = \"hunter2\"\nturn-secret-file = \"/etc/s\"\nallowed-host = [\"a.fr\", \"b.fr\"]\nredirect-http = true\n",
            &cmd(),
        )
        .unwrap();
        let c = file.apply(cmd());
        let m = c.clone().try_get_matches_from(["t"]).unwrap();
        let out = effective(&c, &m, &file);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(
            out.contains("turn-secret = \"<redacted>\"  # s.toml:1"),
            "{out}"
        );
        assert!(out.contains("turn-secret-file = \"/etc/s\""), "{out}");
        assert!(
            out.contains("allowed-host = [\"a.fr\", \"b.fr\"]  # s.toml:3"),
            "{out}"
        );
        assert!(out.contains("redirect-http = true  # s.toml:4"), "{out}");
        assert!(out.contains("media-port = 10000  # default"), "{out}");
    }

    #[test]
    fn the_config_flag_is_found_in_both_spellings() {
        let a = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&a(&["salon", "--config", "x.toml"])),
            Some("x.toml".into())
        );
        assert_eq!(
            config_path(&a(&["salon", "--config=y.toml"])),
            Some("y.toml".into())
        );
    }
}
