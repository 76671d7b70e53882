//! The user's preferences file (`$XDG_CONFIG_HOME/futuretop/config.yaml`): key bindings, colours, the mouse, confirmations, the table's first sort and filter; read with a bound and checked with positions, like task files.

use std::path::{Path, PathBuf};

use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;

use crate::config::index::{PosIndex, Problem};
use crate::config::{ConfigError, ConfigErrors, Pos};
use crate::tui::app::{Filter, Sort};
use crate::tui::input::{key_name, parse_key, Bind, Keymap};

/// The largest preferences file read.
pub const MAX_PREFS_BYTES: u64 = 256 * 1024;

/// The colours of the states and of the deadlock banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    /// `· pending`.
    pub pending: Color,
    /// `▶ running`.
    pub running: Color,
    /// `✔ done`.
    pub done: Color,
    /// `✘ failed`.
    pub failed: Color,
    /// `⊘ cancelled`.
    pub cancelled: Color,
    /// The deadlock banner's background.
    pub banner: Color,
}

impl Default for Palette {
    fn default() -> Self {
        Self {
            pending: Color::Gray,
            running: Color::Cyan,
            done: Color::Green,
            failed: Color::Red,
            cancelled: Color::Yellow,
            banner: Color::Red,
        }
    }
}

/// What the preferences file sets (each with its default when the file does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    /// Which key does what.
    pub keys: Keymap,
    /// The colours.
    pub palette: Palette,
    /// Take the mouse (`--no-mouse` turns it off whatever this says).
    pub mouse: bool,
    /// Ask before `x`, `C`, `b` and `c` on a task with dependents.
    pub confirm: bool,
    /// The table's first sort.
    pub sort: Sort,
    /// Inverted.
    pub sort_inverted: bool,
    /// The table's first state filter.
    pub filter: Filter,
    /// The `/` filter to start with.
    pub query: String,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            keys: Keymap::default(),
            palette: Palette::default(),
            mouse: true,
            confirm: true,
            sort: Sort::Submitted,
            sort_inverted: false,
            filter: Filter::All,
            query: String::new(),
        }
    }
}

/// The file `futuretop config --default` prints: every setting at its default, with what
/// it means. A test reads it back to [`Prefs::default`].
pub fn default_text() -> String {
    let mut out = String::from(
        "# futuretop preferences: $XDG_CONFIG_HOME/futuretop/config.yaml\n\
         # (~/.config/futuretop/config.yaml when XDG_CONFIG_HOME is not set).\n\
         # Every key is optional; this file sets each to its default.\n\
         \n\
         # The keys of every action: a key, or a list of keys. A key is a character (x, ?, G)\n\
         # or a name: Enter, Esc, Tab, Space, Up, Down, Left, Right, PageUp, PageDown, Home,\n\
         # End, Backspace, Delete, F1 to F12. A key does one thing. Ctrl-C always stops the run.\n\
         keys:\n",
    );
    for b in Bind::ALL {
        let keys: Vec<String> = b.default_keys().iter().map(|&k| yaml_key(k)).collect();
        let value = if keys.len() == 1 { keys[0].clone() } else { format!("[{}]", keys.join(", ")) };
        out.push_str(&format!("  {}: {value}\n", b.name()));
    }
    out.push_str(
        "\n# Colours of the states and of the deadlock banner: black, red, green, yellow, blue,\n\
         # magenta, cyan, gray, darkgray, lightred, lightgreen, lightyellow, lightblue,\n\
         # lightmagenta, lightcyan, white, or #rrggbb. --color never and NO_COLOR turn them off.\n\
         colors:\n  pending: gray\n  running: cyan\n  done: green\n  failed: red\n  cancelled: yellow\n  banner: red\n\
         \n# Take the mouse: a click selects, the wheel scrolls. false leaves it to the terminal\n\
         # (to select text), as --no-mouse does.\n\
         mouse: true\n\
         \n# Ask before x, C, b, and c on a task others depend on.\n\
         confirm: true\n\
         \n# The table's first order: submitted, name, pool, state, worker, duration, result.\n\
         sort: submitted\n\
         sort_inverted: false\n\
         \n# The table's first state filter: all, active, failed, done, cancelled.\n\
         filter: all\n\
         \n# A / filter to start with (name:, pool:, state:, error: terms, ! negates).\n\
         query: \"\"\n",
    );
    out
}

/// `k` as the file writes it (quoted where YAML would read it otherwise).
fn yaml_key(k: KeyCode) -> String {
    let name = key_name(k);
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain && name != "y" && name != "Y" {
        name
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Where the preferences file is: `$XDG_CONFIG_HOME/futuretop/config.yaml`, or
/// `~/.config/futuretop/config.yaml`; `None` without either variable.
pub fn path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("futuretop").join("config.yaml"))
}

/// Reads the preferences file, if there is one (no file: the defaults).
pub fn load() -> Result<Prefs, ConfigErrors> {
    match path() {
        Some(p) if p.exists() => load_file(&p),
        _ => Ok(Prefs::default()),
    }
}

/// Reads and checks the preferences file at `path`.
pub fn load_file(path: &Path) -> Result<Prefs, ConfigErrors> {
    let file = path.display().to_string();
    let fail =
        |message: String| ConfigErrors(vec![ConfigError { file: file.clone(), pos: Pos { line: 1, col: 1 }, message }]);
    let opened = std::fs::File::open(path).map_err(|e| fail(format!("cannot read the preferences file: {e}")))?;
    if opened.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(fail("is a directory; expected the YAML preferences file".into()));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(opened, MAX_PREFS_BYTES + 1), &mut bytes)
        .map_err(|e| fail(format!("cannot read the preferences file: {e}")))?;
    if bytes.len() as u64 > MAX_PREFS_BYTES {
        return Err(fail(format!("larger than {MAX_PREFS_BYTES} bytes, the limit of a preferences file")));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| fail(format!("not a text file: invalid UTF-8 at byte {}", e.utf8_error().valid_up_to())))?;
    parse(&file, &text)
}

/// The settings a preferences file may hold.
const TOP: [&str; 8] = ["keys", "colors", "mouse", "confirm", "sort", "sort_inverted", "filter", "query"];
/// The colours it may set.
const COLOR_NAMES: [&str; 6] = ["pending", "running", "done", "failed", "cancelled", "banner"];

/// Checks the preferences in `text` (from `file`): every problem, with its position.
pub fn parse(file: &str, text: &str) -> Result<Prefs, ConfigErrors> {
    let (index, problem) = PosIndex::scan(text);
    let err = |pos: Pos, message: String| ConfigError { file: file.to_owned(), pos, message };
    if let Some(p) = problem {
        let (pos, what) = match p {
            Problem::TooDeep(pos) => (pos, "nested too deeply".to_owned()),
            Problem::Syntax(pos, what) => (pos, format!("not valid YAML: {what}")),
        };
        return Err(ConfigErrors(vec![err(pos, what)]));
    }
    if let Some(pos) = index.first_alias {
        return Err(ConfigErrors(vec![err(pos, "aliases are not allowed in a preferences file".into())]));
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos { line: l.line(), col: l.column() });
        ConfigErrors(vec![err(pos, format!("not valid YAML: {e}"))])
    })?;
    let mut prefs = Prefs::default();
    let mut errors = Vec::new();
    let top = match value {
        serde_yaml::Value::Null => return Ok(prefs),
        serde_yaml::Value::Mapping(m) => m,
        _ => return Err(ConfigErrors(vec![err(index.value(""), "expected a mapping of settings".into())])),
    };
    for (k, v) in &top {
        let Some(key) = k.as_str() else {
            errors.push(err(index.value(""), "a setting's name must be text".into()));
            continue;
        };
        let at = index.value(key);
        let bool_of = |v: &serde_yaml::Value| v.as_bool();
        match key {
            "keys" => read_keys(v, &index, &mut prefs, &mut |p, m| errors.push(err(p, m))),
            "colors" => read_colors(v, &index, &mut prefs.palette, &mut |p, m| errors.push(err(p, m))),
            "mouse" | "confirm" | "sort_inverted" => match bool_of(v) {
                Some(b) if key == "mouse" => prefs.mouse = b,
                Some(b) if key == "confirm" => prefs.confirm = b,
                Some(b) => prefs.sort_inverted = b,
                None => errors.push(err(at, format!("'{key}' is true or false"))),
            },
            "sort" => match v.as_str().and_then(|s| Sort::COLUMNS.into_iter().find(|c| c.label() == s)) {
                Some(s) => prefs.sort = s,
                None => errors
                    .push(err(at, "'sort' is one of submitted, name, pool, state, worker, duration, result".into())),
            },
            "filter" => match v.as_str().and_then(|s| Filter::ALL.into_iter().find(|f| f.label() == s)) {
                Some(f) => prefs.filter = f,
                None => errors.push(err(at, "'filter' is one of all, active, failed, done, cancelled".into())),
            },
            "query" => match v.as_str() {
                Some(q) => q.clone_into(&mut prefs.query),
                None => errors.push(err(at, "'query' is text (a / filter)".into())),
            },
            other => {
                let hint = crate::schema::did_you_mean(other, TOP)
                    .map_or_else(String::new, |m| format!(" (did you mean '{m}'?)"));
                errors.push(err(
                    index.key(other),
                    format!("unknown setting '{other}'{hint}; settings: {}", TOP.join(", ")),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(prefs)
    } else {
        errors.sort_by_key(|e| (e.pos.line, e.pos.col));
        Err(ConfigErrors(errors))
    }
}

/// `keys:`: each action's keys; a key bound to two actions is refused at both.
fn read_keys(v: &serde_yaml::Value, index: &PosIndex, prefs: &mut Prefs, error: &mut dyn FnMut(Pos, String)) {
    let Some(map) = v.as_mapping() else {
        error(index.value("keys"), "'keys' is a mapping of actions to keys".into());
        return;
    };
    let names: Vec<&str> = Bind::ALL.iter().map(|b| b.name()).collect();
    let mut bindings: Vec<(Bind, Vec<KeyCode>)> = Bind::ALL.iter().map(|&b| (b, b.default_keys().to_vec())).collect();
    let mut set: Vec<(Bind, String)> = Vec::new();
    for (k, keys) in map {
        let Some(name) = k.as_str() else {
            error(index.value("keys"), "an action's name must be text".into());
            continue;
        };
        let path = format!("keys.{name}");
        let Some(b) = Bind::ALL.into_iter().find(|b| b.name() == name) else {
            let hint = crate::schema::did_you_mean(name, names.iter().copied())
                .map_or_else(String::new, |m| format!(" (did you mean '{m}'?)"));
            error(index.key(&path), format!("unknown action '{name}'{hint}; actions: {}", names.join(", ")));
            continue;
        };
        let list: Vec<&serde_yaml::Value> = match keys {
            serde_yaml::Value::Sequence(s) => s.iter().collect(),
            one => vec![one],
        };
        let mut codes = Vec::new();
        for (i, key) in list.iter().enumerate() {
            let at = if matches!(keys, serde_yaml::Value::Sequence(_)) {
                index.value(&format!("{path}[{i}]"))
            } else {
                index.value(&path)
            };
            let text = match key {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => {
                    error(at, format!("'{name}': YAML reads this key as {b}: quote it (\"y\", \"n\")"));
                    continue;
                }
                _ => {
                    error(at, format!("'{name}': expected a key or a list of keys"));
                    continue;
                }
            };
            match parse_key(&text) {
                Some(code) => codes.push((code, at)),
                None => error(at, format!("'{name}': '{text}' is not a key (a character, or Enter, Esc, Tab, Space, Up, Down, PageUp, PageDown, Home, End, F1..F12)")),
            }
        }
        if let Some(slot) = bindings.iter_mut().find(|(x, _)| *x == b) {
            slot.1 = codes.iter().map(|(c, _)| *c).collect();
        }
        for (code, _) in &codes {
            set.push((b, key_name(*code)));
        }
    }
    // A key does one thing: two actions on one key are refused, where the file binds it.
    let mut seen: std::collections::HashMap<KeyCode, Bind> = std::collections::HashMap::new();
    for (b, keys) in &bindings {
        for k in keys {
            if let Some(other) = seen.insert(*k, *b).filter(|o| o != b) {
                let path = if set.iter().any(|(x, _)| x == b) {
                    format!("keys.{}", b.name())
                } else {
                    format!("keys.{}", other.name())
                };
                error(
                    index.value(&path),
                    format!(
                        "key '{}' is bound to both '{}' and '{}': a key does one thing (bind the other elsewhere)",
                        key_name(*k),
                        other.name(),
                        b.name()
                    ),
                );
            }
        }
    }
    prefs.keys = Keymap::with(bindings);
}

/// `colors:`.
fn read_colors(v: &serde_yaml::Value, index: &PosIndex, palette: &mut Palette, error: &mut dyn FnMut(Pos, String)) {
    let Some(map) = v.as_mapping() else {
        error(index.value("colors"), "'colors' is a mapping of states to colours".into());
        return;
    };
    for (k, c) in map {
        let name = k.as_str().unwrap_or("");
        let path = format!("colors.{name}");
        let slot = match name {
            "pending" => &mut palette.pending,
            "running" => &mut palette.running,
            "done" => &mut palette.done,
            "failed" => &mut palette.failed,
            "cancelled" => &mut palette.cancelled,
            "banner" => &mut palette.banner,
            other => {
                let hint = crate::schema::did_you_mean(other, COLOR_NAMES)
                    .map_or_else(String::new, |m| format!(" (did you mean '{m}'?)"));
                error(index.key(&path), format!("unknown colour '{other}'{hint}; colours: {}", COLOR_NAMES.join(", ")));
                continue;
            }
        };
        match c.as_str().and_then(|s| s.parse::<Color>().ok()) {
            Some(color) => *slot = color,
            None => error(index.value(&path), format!("'{name}': not a colour (red, lightblue, #ff8800, ...)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_reads_back_as_the_defaults() {
        let text = default_text();
        assert_eq!(parse("config.yaml", &text), Ok(Prefs::default()), "{text}");
        assert_eq!(parse("config.yaml", ""), Ok(Prefs::default()), "an empty file");
    }

    #[test]
    fn bindings_colours_and_settings_are_read() {
        let text = "keys:\n  kill: K\n  cancel: [c, Delete]\n  quit: [q, F10]\ncolors:\n  failed: magenta\n  done: \"#00ff00\"\nmouse: false\nconfirm: false\nsort: duration\nsort_inverted: true\nfilter: failed\nquery: \"pool:io\"\n";
        let p = parse("p.yaml", text).expect("valid");
        assert_eq!(p.keys.action(KeyCode::Char('K')), Some(Bind::Kill));
        assert_eq!(p.keys.action(KeyCode::Char('x')), None, "x is no longer kill");
        assert_eq!(p.keys.action(KeyCode::Delete), Some(Bind::Cancel));
        assert_eq!(p.keys.action(KeyCode::F(10)), Some(Bind::Quit));
        assert_eq!(p.palette.failed, Color::Magenta);
        assert_eq!(p.palette.done, Color::Rgb(0, 255, 0));
        assert!(!p.mouse && !p.confirm && p.sort_inverted);
        assert_eq!((p.sort, p.filter, p.query.as_str()), (Sort::Duration, Filter::Failed, "pool:io"));
    }

    #[test]
    fn every_problem_is_placed_and_explained() {
        let text =
            "keys:\n  kil: K\n  kill: j\n  help: [\"?\", Bogus]\ncolors:\n  failed: mauve\nmouse: maybe\nsrot: name\n";
        let e = parse("p.yaml", text).expect_err("problems").to_string();
        assert!(e.contains("p.yaml:2:3: unknown action 'kil' (did you mean 'kill'?)"), "{e}");
        assert!(
            e.contains("p.yaml:3:9: key 'j' is bound to both 'kill' and 'down'")
                || e.contains("p.yaml:3:9: key 'j' is bound to both 'down' and 'kill'"),
            "{e}"
        );
        assert!(e.contains("p.yaml:4:15: 'help': 'Bogus' is not a key"), "{e}");
        assert!(e.contains("p.yaml:6:11: 'failed': not a colour"), "{e}");
        assert!(e.contains("p.yaml:7:8: 'mouse' is true or false"), "{e}");
        assert!(e.contains("p.yaml:8:1: unknown setting 'srot' (did you mean 'sort'?)"), "{e}");
        let e = parse("p.yaml", "keys: [oops").expect_err("bad YAML").to_string();
        assert!(e.starts_with("p.yaml:2:1: not valid YAML"), "{e}");
    }
}
