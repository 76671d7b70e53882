//! Text for a terminal: control characters, newlines included, shown escaped, so that a task name, a message or a command's output cannot move the cursor, retitle the window or break a line.

use std::borrow::Cow;

/// True for a character that must not reach a terminal as it is: the control characters
/// (C0, DEL, C1) and Unicode's bidirectional overrides and isolates (which reorder what
/// follows them on the line).
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escape(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
    }
}

/// `s` with every control character shown as an escape (`\n`, `\t`, `\u{1b}`, ...): for
/// one field of a line (a task's name, an error's message).
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` with the control characters of its lines shown escaped and its line breaks kept:
/// for text made of lines (a summary, a list of problems), the last guard before the
/// terminal.
pub fn lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && hidden(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\n' && hidden(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{lines, visible};

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(visible("plain [3] é"), "plain [3] é");
        assert_eq!(visible("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(visible("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(visible("\u{9b}2J \u{202e}evil"), "\\u{9b}2J \\u{202e}evil");
        assert_eq!(lines("one \u{1b}[2J\ntwo\n"), "one \\u{1b}[2J\ntwo\n");
    }
}
