//! Keys and mouse to actions: what each key means in each mode.

use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

use super::app::{Action, App, View};

/// Replay controls (handled by the replay feeder, not the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayKey {
    /// Pause or resume.
    Pause,
    /// One event forward while paused.
    Step,
    /// Twice as fast.
    Faster,
    /// Half as fast.
    Slower,
    /// One event back (`,`): the log again from its start, to the event before.
    StepBack,
    /// On to the next deadlock, failure or kill (`n`), and pause there.
    NextMark,
    /// Back to the previous deadlock, failure or kill (`N`), and pause there.
    PreviousMark,
}

/// What a terminal event means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An app action.
    Action(Action),
    /// A replay control.
    Replay(ReplayKey),
    /// The terminal was resized: redraw.
    Redraw,
}

/// Maps a terminal event to an input, given the app's mode and the last frame's
/// geometry (for mouse clicks).
pub fn map(ev: &TermEvent, app: &App) -> Option<Input> {
    let table_top = app.view.geometry.table_top;
    match ev {
        TermEvent::Key(k) if k.kind != KeyEventKind::Release => key(*k, app),
        TermEvent::Mouse(m) => match m.kind {
            MouseEventKind::ScrollDown => Some(Input::Action(Action::Move(3))),
            MouseEventKind::ScrollUp => Some(Input::Action(Action::Move(-3))),
            // Only a click on one of the table's rows selects: not on the workers panel,
            // the footer, or another view.
            // A click on a column head sorts by it.
            MouseEventKind::Down(_)
                if app.view.screen == View::Main
                    && table_top > 0
                    && m.row == table_top - 1
                    && m.column < app.view.geometry.table_width =>
            {
                app.view.geometry.head_at(m.column).map(|s| Input::Action(Action::SortBy(s)))
            }
            MouseEventKind::Down(_)
                if app.view.screen == View::Main
                    && m.column < app.view.geometry.table_width
                    && m.row >= table_top
                    && usize::from(m.row - table_top) < app.view.geometry.page =>
            {
                Some(Input::Action(Action::Click(usize::from(m.row - table_top))))
            }
            _ => None,
        },
        TermEvent::Resize(..) => Some(Input::Redraw),
        _ => None,
    }
}

/// An action a key can be bound to: the names of the preferences file's `keys:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bind {
    /// `q`.
    Quit,
    /// `?`.
    Help,
    /// `j`, ↓.
    Down,
    /// `k`, ↑.
    Up,
    /// PgDn.
    PageDown,
    /// PgUp.
    PageUp,
    /// `g`, Home.
    Top,
    /// `G`, End.
    Bottom,
    /// Enter.
    Details,
    /// Esc.
    Back,
    /// `c`.
    Cancel,
    /// `x`.
    Kill,
    /// `C`.
    CancelPool,
    /// `b`.
    Break,
    /// `/`.
    Search,
    /// `f`.
    Filter,
    /// `s`.
    Sort,
    /// `<`.
    SortPrevious,
    /// `>`.
    SortNext,
    /// `I`.
    InvertSort,
    /// Tab.
    SwitchPane,
    /// `w`.
    Graph,
    /// `t`.
    Timeline,
    /// Space.
    Pause,
    /// `y`, to a question.
    Yes,
    /// `.` in a replay.
    Step,
    /// `+` in a replay.
    Faster,
    /// `-` in a replay.
    Slower,
    /// `,` in a replay.
    StepBack,
    /// `n` in a replay.
    NextMark,
    /// `N` in a replay.
    PreviousMark,
    /// `r`: resubmit (to come with retries); in a replay, read-only like `c` and `x`.
    Resubmit,
    /// `p`: the dependency graph and its critical path.
    CriticalPath,
    /// `d`: detach: the run goes on in the background (a run in the foreground, or one
    /// attached to with `futuretop attach`).
    Detach,
}

impl Bind {
    /// Every action, in the preferences file's order.
    pub const ALL: [Self; 34] = [
        Self::Quit,
        Self::Help,
        Self::Down,
        Self::Up,
        Self::PageDown,
        Self::PageUp,
        Self::Top,
        Self::Bottom,
        Self::Details,
        Self::Back,
        Self::Cancel,
        Self::Kill,
        Self::CancelPool,
        Self::Break,
        Self::Search,
        Self::Filter,
        Self::Sort,
        Self::SortPrevious,
        Self::SortNext,
        Self::InvertSort,
        Self::SwitchPane,
        Self::Graph,
        Self::Timeline,
        Self::Pause,
        Self::Yes,
        Self::Step,
        Self::Faster,
        Self::Slower,
        Self::StepBack,
        Self::NextMark,
        Self::PreviousMark,
        Self::Resubmit,
        Self::CriticalPath,
        Self::Detach,
    ];

    /// Its name under `keys:`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Quit => "quit",
            Self::Help => "help",
            Self::Down => "down",
            Self::Up => "up",
            Self::PageDown => "page_down",
            Self::PageUp => "page_up",
            Self::Top => "top",
            Self::Bottom => "bottom",
            Self::Details => "details",
            Self::Back => "back",
            Self::Cancel => "cancel",
            Self::Kill => "kill",
            Self::CancelPool => "cancel_pool",
            Self::Break => "break",
            Self::Search => "search",
            Self::Filter => "filter",
            Self::Sort => "sort",
            Self::SortPrevious => "sort_previous",
            Self::SortNext => "sort_next",
            Self::InvertSort => "invert_sort",
            Self::SwitchPane => "switch_pane",
            Self::Graph => "graph",
            Self::Timeline => "timeline",
            Self::Pause => "pause",
            Self::Yes => "yes",
            Self::Step => "step",
            Self::Faster => "faster",
            Self::Slower => "slower",
            Self::StepBack => "step_back",
            Self::NextMark => "next_mark",
            Self::PreviousMark => "previous_mark",
            Self::Resubmit => "resubmit",
            Self::CriticalPath => "critical_path",
            Self::Detach => "detach",
        }
    }

    /// Its keys unless the preferences say otherwise.
    pub const fn default_keys(self) -> &'static [KeyCode] {
        match self {
            Self::Quit => &[KeyCode::Char('q')],
            Self::Help => &[KeyCode::Char('?')],
            Self::Down => &[KeyCode::Char('j'), KeyCode::Down],
            Self::Up => &[KeyCode::Char('k'), KeyCode::Up],
            Self::PageDown => &[KeyCode::PageDown],
            Self::PageUp => &[KeyCode::PageUp],
            Self::Top => &[KeyCode::Char('g'), KeyCode::Home],
            Self::Bottom => &[KeyCode::Char('G'), KeyCode::End],
            Self::Details => &[KeyCode::Enter],
            Self::Back => &[KeyCode::Esc],
            Self::Cancel => &[KeyCode::Char('c')],
            Self::Kill => &[KeyCode::Char('x')],
            Self::CancelPool => &[KeyCode::Char('C')],
            Self::Break => &[KeyCode::Char('b')],
            Self::Search => &[KeyCode::Char('/')],
            Self::Filter => &[KeyCode::Char('f')],
            Self::Sort => &[KeyCode::Char('s')],
            Self::SortPrevious => &[KeyCode::Char('<')],
            Self::SortNext => &[KeyCode::Char('>')],
            Self::InvertSort => &[KeyCode::Char('I')],
            Self::SwitchPane => &[KeyCode::Tab],
            Self::Graph => &[KeyCode::Char('w')],
            Self::Timeline => &[KeyCode::Char('t')],
            Self::Pause => &[KeyCode::Char(' ')],
            Self::Yes => &[KeyCode::Char('y'), KeyCode::Char('Y')],
            Self::Step => &[KeyCode::Char('.')],
            Self::Faster => &[KeyCode::Char('+')],
            Self::Slower => &[KeyCode::Char('-')],
            Self::StepBack => &[KeyCode::Char(',')],
            Self::NextMark => &[KeyCode::Char('n')],
            Self::PreviousMark => &[KeyCode::Char('N')],
            Self::Resubmit => &[KeyCode::Char('r')],
            Self::CriticalPath => &[KeyCode::Char('p')],
            Self::Detach => &[KeyCode::Char('d')],
        }
    }
}

/// A key's name in the preferences file and the help: a character (`x`, `?`), or
/// `Enter`, `Esc`, `Tab`, `Space`, `Up`, `Down`, `Left`, `Right`, `PageUp`, `PageDown`,
/// `Home`, `End`, `Backspace`, `Delete`, `F1` to `F12`.
pub fn key_name(k: KeyCode) -> String {
    match k {
        KeyCode::Char(' ') => "Space".into(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::Up => "Up".into(),
        KeyCode::Down => "Down".into(),
        KeyCode::Left => "Left".into(),
        KeyCode::Right => "Right".into(),
        KeyCode::PageUp => "PageUp".into(),
        KeyCode::PageDown => "PageDown".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Backspace => "Backspace".into(),
        KeyCode::Delete => "Delete".into(),
        KeyCode::F(n) => format!("F{n}"),
        other => format!("{other:?}"),
    }
}

/// The key a name stands for (see [`key_name`]); `None` for a name that is no key.
pub fn parse_key(name: &str) -> Option<KeyCode> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return (!c.is_control()).then_some(KeyCode::Char(c));
    }
    Some(match name {
        "Space" => KeyCode::Char(' '),
        "Enter" => KeyCode::Enter,
        "Esc" => KeyCode::Esc,
        "Tab" => KeyCode::Tab,
        "Up" => KeyCode::Up,
        "Down" => KeyCode::Down,
        "Left" => KeyCode::Left,
        "Right" => KeyCode::Right,
        "PageUp" => KeyCode::PageUp,
        "PageDown" => KeyCode::PageDown,
        "Home" => KeyCode::Home,
        "End" => KeyCode::End,
        "Backspace" => KeyCode::Backspace,
        "Delete" => KeyCode::Delete,
        f => match f.strip_prefix('F').and_then(|n| n.parse::<u8>().ok()) {
            Some(n @ 1..=12) => KeyCode::F(n),
            _ => return None,
        },
    })
}

/// Which key does what: the defaults, with the preferences file's bindings in their
/// place. A key means one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    by_key: std::collections::HashMap<KeyCode, Bind>,
    keys: Vec<(Bind, Vec<KeyCode>)>,
}

impl Default for Keymap {
    fn default() -> Self {
        Self::with(Bind::ALL.iter().map(|&b| (b, b.default_keys().to_vec())))
    }
}

impl Keymap {
    /// The keymap binding each action to its keys (a key bound twice keeps the first).
    pub fn with(bindings: impl IntoIterator<Item = (Bind, Vec<KeyCode>)>) -> Self {
        let keys: Vec<(Bind, Vec<KeyCode>)> = bindings.into_iter().collect();
        let mut by_key = std::collections::HashMap::new();
        for (b, ks) in &keys {
            for k in ks {
                by_key.entry(*k).or_insert(*b);
            }
        }
        Self { by_key, keys }
    }

    /// The action `k` is bound to.
    pub fn action(&self, k: KeyCode) -> Option<Bind> {
        self.by_key.get(&k).copied()
    }

    /// The keys bound to `b`.
    pub fn keys(&self, b: Bind) -> &[KeyCode] {
        self.keys.iter().find(|(x, _)| *x == b).map_or(&[], |(_, k)| k.as_slice())
    }

    /// `b`'s keys as the help shows them: `x`, `j ↓`, `Enter`.
    pub fn shown(&self, b: Bind) -> String {
        let names: Vec<String> = self
            .keys(b)
            .iter()
            .map(|&k| match k {
                KeyCode::Up => "↑".to_owned(),
                KeyCode::Down => "↓".to_owned(),
                KeyCode::Char(' ') => "space".to_owned(),
                KeyCode::PageUp => "PgUp".to_owned(),
                KeyCode::PageDown => "PgDn".to_owned(),
                other => key_name(other),
            })
            .collect();
        names.join(" ")
    }
}

fn key(k: KeyEvent, app: &App) -> Option<Input> {
    let a = |a: Action| Some(Input::Action(a));
    if k.modifiers.contains(KeyModifiers::CONTROL) && matches!(k.code, KeyCode::Char('c')) {
        return a(Action::Interrupt);
    }
    if app.view.search.is_some() {
        if k.modifiers.contains(KeyModifiers::CONTROL) {
            return match k.code {
                KeyCode::Char('u') => a(Action::SearchClear),
                KeyCode::Char('w') => a(Action::SearchDeleteWord),
                _ => None,
            };
        }
        return match k.code {
            KeyCode::Char(c) => a(Action::SearchChar(c)),
            KeyCode::Backspace => a(Action::SearchBackspace),
            KeyCode::Enter => a(Action::SearchEnd),
            KeyCode::Esc => a(Action::Back),
            _ => None,
        };
    }
    let bound = app.keys.action(k.code);
    if app.view.confirm.is_some() {
        // The `yes` keys do it; any other key does nothing.
        return if bound == Some(Bind::Yes) { a(Action::Confirm) } else { a(Action::Back) };
    }
    if app.view.help {
        // Any key closes the help, and does nothing else.
        return a(Action::Help);
    }
    if app.view.confirm_quit && app.attached() {
        // `detach (d) or stop the run (s)?`
        return match k.code {
            KeyCode::Char('d') => a(Action::Detach),
            KeyCode::Char('s') => a(Action::StopRun),
            _ => a(Action::Back),
        };
    }
    if app.view.confirm_quit {
        return match bound {
            Some(Bind::Yes | Bind::Quit) => a(Action::Confirm),
            Some(Bind::Detach) => a(Action::Detach),
            _ => a(Action::Back),
        };
    }
    let replay = |r: ReplayKey| Some(Input::Replay(r));
    match bound? {
        Bind::Quit => a(Action::Quit),
        Bind::Help => a(Action::Help),
        Bind::Down => a(Action::Move(1)),
        Bind::Up => a(Action::Move(-1)),
        Bind::PageDown => a(Action::Page(1)),
        Bind::PageUp => a(Action::Page(-1)),
        Bind::Top => a(Action::Top),
        Bind::Bottom => a(Action::Bottom),
        Bind::Details => a(Action::Open),
        Bind::Back => a(Action::Back),
        Bind::Cancel => a(Action::Cancel),
        Bind::Kill => a(Action::Kill),
        Bind::CancelPool => a(Action::CancelPool),
        Bind::Break => a(Action::Break),
        Bind::Search => a(Action::SearchStart),
        Bind::Filter => a(Action::CycleFilter),
        Bind::Sort => a(Action::CycleSort),
        Bind::SortPrevious => a(Action::SortColumn(false)),
        Bind::SortNext => a(Action::SortColumn(true)),
        Bind::InvertSort => a(Action::InvertSort),
        Bind::SwitchPane => a(Action::SwitchPane),
        Bind::Graph => a(Action::Graph),
        Bind::Timeline => a(Action::Timeline),
        Bind::Pause if app.read_only => replay(ReplayKey::Pause),
        Bind::Pause => a(Action::Pause),
        Bind::Step if app.read_only => replay(ReplayKey::Step),
        Bind::Faster if app.read_only => replay(ReplayKey::Faster),
        Bind::Slower if app.read_only => replay(ReplayKey::Slower),
        Bind::StepBack if app.read_only => replay(ReplayKey::StepBack),
        Bind::NextMark if app.read_only => replay(ReplayKey::NextMark),
        Bind::PreviousMark if app.read_only => replay(ReplayKey::PreviousMark),
        Bind::Resubmit => a(Action::Resubmit),
        Bind::CriticalPath => a(Action::Critical),
        Bind::Detach => a(Action::Detach),
        Bind::Yes | Bind::Step | Bind::Faster | Bind::Slower | Bind::StepBack | Bind::NextMark | Bind::PreviousMark => {
            None
        }
    }
}
