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
    if app.view.confirm.is_some() {
        // `y` does it; any other key does nothing.
        return match k.code {
            KeyCode::Char('y' | 'Y') => a(Action::Confirm),
            _ => a(Action::Back),
        };
    }
    if app.view.help {
        // Any key closes the help, and does nothing else.
        return a(Action::Help);
    }
    if app.view.confirm_quit {
        return match k.code {
            KeyCode::Char('y' | 'Y' | 'q') => a(Action::Confirm),
            _ => a(Action::Back),
        };
    }
    match k.code {
        KeyCode::Char('q') => a(Action::Quit),
        KeyCode::Char('?') => a(Action::Help),
        KeyCode::Char('j') | KeyCode::Down => a(Action::Move(1)),
        KeyCode::Char('k') | KeyCode::Up => a(Action::Move(-1)),
        KeyCode::PageDown => a(Action::Page(1)),
        KeyCode::PageUp => a(Action::Page(-1)),
        KeyCode::Char('g') | KeyCode::Home => a(Action::Top),
        KeyCode::Char('G') | KeyCode::End => a(Action::Bottom),
        KeyCode::Enter => a(Action::Open),
        KeyCode::Esc => a(Action::Back),
        KeyCode::Char('c') => a(Action::Cancel),
        KeyCode::Char('x') => a(Action::Kill),
        KeyCode::Char('C') => a(Action::CancelPool),
        KeyCode::Char('b') => a(Action::Break),
        KeyCode::Char('/') => a(Action::SearchStart),
        KeyCode::Char('f') => a(Action::CycleFilter),
        KeyCode::Char('s') => a(Action::CycleSort),
        KeyCode::Char('<') => a(Action::SortColumn(false)),
        KeyCode::Char('>') => a(Action::SortColumn(true)),
        KeyCode::Char('I') => a(Action::InvertSort),
        KeyCode::Tab => a(Action::SwitchPane),
        KeyCode::Char('w') => a(Action::Graph),
        KeyCode::Char('t') => a(Action::Timeline),
        KeyCode::Char(' ') if app.read_only => Some(Input::Replay(ReplayKey::Pause)),
        KeyCode::Char(' ') => a(Action::Pause),
        KeyCode::Char('.') if app.read_only => Some(Input::Replay(ReplayKey::Step)),
        KeyCode::Char('+') if app.read_only => Some(Input::Replay(ReplayKey::Faster)),
        KeyCode::Char('-') if app.read_only => Some(Input::Replay(ReplayKey::Slower)),
        _ => None,
    }
}
