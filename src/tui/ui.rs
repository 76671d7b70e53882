//! Drawing the monitor: header, futures table, workers panel, deadlock banner, detail, graph, timeline, help.
//!
//! Rendering reads the state and never changes what the user sees next, except for the
//! table's page size, which the host stores back after a draw. Only visible rows are
//! built. Colour marks states and the banner; every state is also a word and a symbol,
//! so the screen reads the same with `NO_COLOR`.

// Screen geometry: every float-to-cell conversion here is of a small, non-negative value.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Sparkline, Table, Wrap};
use ratatui::Frame;

use super::app::{quote, App, Geometry, Pane, PoolView, RowState, View};
use super::input::{Bind, Keymap};
use crate::pools::PoolKind;

/// How to paint: in colour, or plain (`NO_COLOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// False under `NO_COLOR`.
    pub color: bool,
    /// The colours (the preferences file's `colors:`).
    pub palette: crate::prefs::Palette,
}

impl Default for Theme {
    fn default() -> Self {
        Self { color: true, palette: crate::prefs::Palette::default() }
    }
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    fn state(self, s: RowState) -> Style {
        let p = self.palette;
        self.fg(match s {
            RowState::Pending => p.pending,
            RowState::Running => p.running,
            RowState::Done => p.done,
            RowState::Failed => p.failed,
            RowState::Cancelled => p.cancelled,
        })
    }

    fn banner(self) -> Style {
        if self.color {
            Style::default().fg(Color::White).bg(self.palette.banner).add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }

    fn stall(self) -> Style {
        if self.color {
            Style::default().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }

    fn selected(self) -> Style {
        if self.color {
            Style::default().bg(Color::DarkGray).add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        }
    }
}

fn secs(s: f64) -> String {
    if s >= 3600.0 {
        format!("{}h{:02}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    } else if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1}s")
    }
}

fn bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = b as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1}G", b / (1024.0 * MIB))
    } else {
        format!("{:.0}M", b / MIB)
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Draws the whole screen from the state, which it only reads; returns where the table
/// went (the next key's page size and the clicks' rows), for the host to hand to
/// [`App::set_geometry`].
pub fn draw(f: &mut Frame<'_>, app: &App, theme: Theme) -> Geometry {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(f, app, area, theme);
        return Geometry { table_width: 0, ..app.view.geometry };
    }
    // The banner grows with its explanation (up to 6 lines), so the way out stays
    // visible; when the screen is short it gives way first, down to its first line.
    let banner =
        app.model.deadlocks.first().map(|d| (banner_lines(app, d, usize::from(area.width)), theme.banner())).or_else(
            || app.model.stall.as_ref().map(|s| (stall_lines(app, s, usize::from(area.width)), theme.stall())),
        );
    let room = area.height.saturating_sub(3 + 2 + 5).max(1);
    let banner_h = banner.as_ref().map_or(0, |(lines, _)| u16::try_from(lines.len().min(6)).unwrap_or(6).min(room));
    let [header, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(banner_h),
        Constraint::Min(5),
        Constraint::Length(2),
    ])
    .areas(area);
    draw_header(f, app, header, theme);
    if let Some((lines, style)) = banner {
        draw_banner(f, lines, banner_area, style);
    }
    // No table on the other screens: clicks select nothing; the page size stays.
    let mut geometry = Geometry { table_width: 0, ..app.view.geometry };
    match app.view.screen {
        View::Main => geometry = draw_main(f, app, body, theme),
        View::Detail(id) => geometry.detail_max = draw_detail(f, app, id, body, theme),
        View::Graph => geometry.detail_max = draw_graph(f, app, body, theme),
        View::Timeline => geometry.detail_max = draw_timeline(f, app, body, theme),
        View::Critical => geometry.detail_max = draw_critical(f, app, body, theme),
    }
    draw_footer(f, app, footer, theme);
    if app.view.help {
        draw_help(f, app, area);
    }
    geometry
}

fn draw_header(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme) {
    let total = app.counts().total;
    let finished = app.counts().finished();
    let mut counts: Vec<Span<'_>> = Vec::new();
    for (s, n) in app.counts().per_state() {
        counts.push(Span::styled(format!("{} {} {n}  ", s.symbol(), s.word()), theme.state(s)));
    }
    let ended = |code: i32| match app.model.stopped_by_deadlock() {
        Some(cycle) => format!("stopped: deadlock {cycle} (--on-deadlock fail), exit {code}"),
        None => format!("finished, exit {code}"),
    };
    let status = match app.model.finished {
        Some(code) if app.read_only => format!("{} · replay {}", ended(code), app.view.replay.label()),
        Some(code) => ended(code),
        None if app.read_only => format!("replay {}", app.view.replay.label()),
        None if app.view.frozen.is_some() => "running · paused (Space resumes)".to_owned(),
        None if app.attachment == crate::tui::app::Attachment::CatchingUp => match app.run_count {
            Some((done, total)) => format!("running · catching up on its log… (the run: {done}/{total} done)"),
            None => "running · catching up on its log…".to_owned(),
        },
        None => "running".to_owned(),
    };
    let title = Line::from(vec![
        Span::styled(format!(" {} ", app.model.run), Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!("· {} · {} · {status}", app.model.file, secs(app.model.now))),
    ]);
    // No ETA while a deadlock stands: the run will not end by itself.
    let eta = if app.model.deadlocks.is_empty() {
        app.model.eta().map_or_else(String::new, |e| format!("  eta {}", secs(e)))
    } else {
        "  eta –".to_owned()
    };
    // No `system` event yet (a short run, or a log recorded without them): no figures.
    let system = if app.model.sys.mem_total == 0 {
        "cpu –  mem –".to_owned()
    } else {
        format!(
            "cpu {:.0}%  mem {}/{}",
            app.model.sys.cpu,
            bytes(app.model.sys.mem_used),
            bytes(app.model.sys.mem_total)
        )
    };
    let figures = format!(" {finished}/{total}  {:.1}/s{eta}   {system}", app.model.rate);
    // The bar takes what the figures leave (so they stay on screen at 80 columns).
    let width = usize::from(area.width).saturating_sub(figures.chars().count()).clamp(10, 60);
    let filled = (finished * width).checked_div(total).unwrap_or(0).min(width);
    let progress = Line::from(vec![
        Span::styled("█".repeat(filled), theme.fg(Color::Green)),
        Span::raw("░".repeat(width - filled)),
        Span::raw(figures),
    ]);
    let w = usize::from(area.width);
    f.render_widget(Paragraph::new(vec![fit(title, w), fit(Line::from(counts), w), fit(progress, w)]), area);
}

/// `line` cut to `width` characters, the cut marked `…` (its spans' styles kept).
fn fit(line: Line<'_>, width: usize) -> Line<'_> {
    let len: usize = line.spans.iter().map(|s| s.content.chars().count()).sum();
    if len <= width {
        return line;
    }
    let mut left = width.saturating_sub(1);
    let mut spans: Vec<Span<'_>> = Vec::new();
    for span in line.spans {
        if left == 0 {
            break;
        }
        let n = span.content.chars().count();
        if n <= left {
            left -= n;
            spans.push(span);
        } else {
            let kept: String = span.content.chars().take(left).collect();
            spans.push(Span::styled(kept, span.style));
            left = 0;
        }
    }
    spans.push(Span::raw("…"));
    Line::from(spans)
}

/// The smallest screen the monitor draws on; below it, a `terminal too small` screen.
pub const MIN_WIDTH: u16 = 40;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 10;

/// The banner's lines at `width`: its first line, then the explanation, wrapped.
fn banner_lines(app: &App, d: &crate::model::DeadlockView, width: usize) -> Vec<String> {
    let mut lines = wrap(&banner_head(app, d), width);
    lines.extend(wrap(&format!(" {}", d.message), width));
    lines
}

/// The stall banner's lines at `width`: how long nothing has moved, then what runs (each
/// with how long it has run, on the live clock) and how many wait.
fn stall_lines(app: &App, s: &crate::model::StallView, width: usize) -> Vec<String> {
    let since = (app.model.now - s.at).max(0.0);
    let mut lines = wrap(
        &format!(
            " STALLED: no future has changed state for {} (no deadlock: a hung task, a lost job?)",
            secs(s.after + since)
        ),
        width,
    );
    let running: Vec<String> = s
        .running
        .iter()
        .map(|(_, task, worker, ran)| format!("{} {} on {worker}", quote(task), secs(ran + since)))
        .collect();
    let what = if running.is_empty() { "nothing runs".to_owned() } else { format!("running: {}", running.join(", ")) };
    lines.extend(wrap(&format!(" {what}; {} pending", s.pending), width));
    lines
}

/// Draws the banner's first `area.height` lines; a cut ends in `…`.
fn draw_banner(f: &mut Frame<'_>, mut lines: Vec<String>, area: Rect, style: Style) {
    let shown = usize::from(area.height);
    if lines.len() > shown {
        lines.truncate(shown);
        if let Some(last) = lines.last_mut() {
            *last = cut(&format!("{last} …"), usize::from(area.width));
        }
    }
    let text: Vec<Line<'_>> = lines.into_iter().map(Line::from).collect();
    f.render_widget(Paragraph::new(text).style(style), area);
}

/// `text` broken into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line: Vec<char> = Vec::new();
    for (k, word) in text.split(' ').enumerate() {
        let w: Vec<char> = word.chars().collect();
        if k > 0 {
            if !line.is_empty() && line.len() + 1 + w.len() > width {
                lines.push(line.drain(..).collect());
            } else {
                line.push(' ');
            }
        }
        for c in w {
            if line.len() == width {
                lines.push(line.drain(..).collect());
            }
            line.push(c);
        }
    }
    lines.push(line.into_iter().collect());
    lines
}

/// Below [`MIN_WIDTH`] x [`MIN_HEIGHT`]: what the screen is, what it needs, and the
/// two facts that matter most, a deadlock first.
fn draw_too_small(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme) {
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(d) = app.model.deadlocks.first() {
        let cycle = d.tasks.iter().map(|t| quote(t)).collect::<Vec<_>>().join(" → ");
        let key = if app.read_only { "" } else { " [b]" };
        lines.push(Line::styled(cut(&format!("DEADLOCK{key}: {cycle}"), usize::from(area.width)), theme.banner()));
    }
    let c = app.counts();
    let text = format!(
        "terminal too small: {}×{}, needs at least {MIN_WIDTH}×{MIN_HEIGHT} · {}/{} finished",
        area.width,
        area.height,
        c.finished(),
        c.total
    );
    lines.extend(wrap(&text, usize::from(area.width)).into_iter().map(Line::from));
    f.render_widget(Paragraph::new(lines), area);
}

/// The banner's first line: the deadlock, its one countdown and the way out
/// (` DEADLOCK (cycle): 'a' → 'b' — times out in 5.5s, or press [b] to break it`).
fn banner_head(app: &App, d: &crate::model::DeadlockView) -> String {
    let more = if app.model.deadlocks.len() > 1 {
        format!(" (+{} more)", app.model.deadlocks.len() - 1)
    } else {
        String::new()
    };
    let way_out = match (d.expires_at, app.read_only) {
        (Some(at), false) => format!("times out in {}, or press [b] to break it", secs((at - app.model.now).max(0.0))),
        (Some(at), true) => format!("times out in {}", secs((at - app.model.now).max(0.0))),
        (None, false) => "press [b] to break it".to_owned(),
        (None, true) => "it stands until something ends it".to_owned(),
    };
    let cycle = d.tasks.iter().map(|t| quote(t)).collect::<Vec<_>>().join(" → ");
    format!(" DEADLOCK ({}): {cycle}{more} — {way_out}", d.kind)
}

fn draw_main(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme) -> Geometry {
    // Side by side from 110 columns; from 160 the panel takes two fifths of the screen
    // (its lines hold a task's name and a pid), up to 90 columns.
    let workers_w = match area.width {
        w if w >= 160 => (w * 2 / 5).min(90),
        w if w >= 110 => 46,
        _ => 0,
    };
    let [table_area, workers_area] =
        Layout::horizontal([Constraint::Min(40), Constraint::Length(workers_w)]).areas(area);
    let narrow = area.width < 110;
    let [table_area, workers_area] = if narrow {
        // Compact: one line per pool (its workers do not fit).
        let h = (2 + app.model.pools.len()).min(usize::from(area.height / 3)) as u16;
        Layout::vertical([Constraint::Min(5), Constraint::Length(h.max(3))]).areas(area)
    } else {
        [table_area, workers_area]
    };
    let mut geometry = draw_table(f, app, table_area, theme);
    geometry.workers_max = draw_workers(f, app, workers_area, theme, narrow);
    geometry
}

/// The table's columns at `inner` columns of width, as (column, width), in table order:
/// name and state always, then time, pool, worker and result as they fit (one column
/// between each; the result at least 12 wide); the name takes what is left, from 8 up to
/// 20, and the result the rest.
fn table_columns(inner: usize) -> Vec<(usize, usize)> {
    // (column, width), by priority: name, state, time, result, pool, worker.
    const STATE: usize = 11;
    let mut chosen: Vec<(usize, usize)> = vec![(0, 8), (2, STATE)];
    let used = |c: &[(usize, usize)]| c.iter().map(|&(_, w)| w + 1).sum::<usize>();
    for (col, w) in [(4, 7), (5, 12), (1, 8), (3, 9)] {
        if used(&chosen) + w < inner {
            chosen.push((col, w));
        }
    }
    // The name grows to 20 first, then the result takes the rest.
    let spare = inner.saturating_sub(used(&chosen));
    let grow = spare.min(12);
    chosen[0].1 += grow;
    let spare = spare - grow;
    if let Some(r) = chosen.iter_mut().find(|(c, _)| *c == 5) {
        r.1 += spare;
    }
    chosen.sort_by_key(|&(c, _)| c);
    chosen
}

fn draw_table(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme) -> Geometry {
    let page = usize::from(area.height.saturating_sub(3)).max(1);
    let geometry = Geometry { page, table_top: area.y + 2, table_width: area.right(), ..app.view.geometry };
    let selected = app.view.selected;
    // A paused view draws the rows it kept, at the time it was paused.
    let (now, offset, shown, total_visible): (f64, usize, Vec<&crate::model::Row>, usize) =
        if let Some(frozen) = &app.view.frozen {
            (frozen.now, 0, frozen.rows.iter().take(page).collect(), frozen.rows.len())
        } else {
            let offset = app.first_shown(page);
            let visible = app.visible();
            let shown = visible.iter().skip(offset).take(page).map(|&i| &app.model.rows[i]).collect();
            (app.model.now, offset, shown, visible.len())
        };
    let columns = table_columns(usize::from(area.width.saturating_sub(2)));
    let mut geometry = geometry;
    let mut x = area.x + 1;
    for (slot, &(c, w)) in geometry.heads.iter_mut().zip(columns.iter()) {
        x = x.saturating_add(u16::try_from(w + 1).unwrap_or(u16::MAX));
        *slot = Some((x, super::app::Sort::COLUMNS[c + 1]));
    }
    for slot in geometry.heads.iter_mut().skip(columns.len()) {
        *slot = None;
    }
    let rows: Vec<TableRow<'_>> = shown
        .iter()
        .map(|&r| {
            let style = if Some(r.id) == selected { theme.selected() } else { Style::default() };
            let state = if r.state == RowState::Running && !r.waits_on.is_empty() { "blocked" } else { r.state.word() };
            // Every cut ends in `…`, at the width its column was given.
            let cells: Vec<Cell<'_>> = columns
                .iter()
                .map(|&(c, w)| match c {
                    0 => Cell::from(cut(&r.name, w)),
                    1 => Cell::from(cut(&r.pool, w)),
                    2 => {
                        Cell::from(Span::styled(cut(&format!("{} {state}", r.state.symbol()), w), theme.state(r.state)))
                    }
                    3 => Cell::from(cut(r.worker.as_deref().unwrap_or_default(), w)),
                    4 => Cell::from(r.duration(now).map(secs).unwrap_or_default()),
                    _ => Cell::from(cut(&app.model.result_or_why(r), w)),
                })
                .collect();
            TableRow::new(cells).style(style)
        })
        .collect();
    let focus = match (app.view.pane, app.view.frozen.is_some()) {
        (Pane::Tasks, true) => " [focus] · paused",
        (Pane::Tasks, false) => " [focus]",
        (_, true) => " · paused",
        _ => "",
    };
    let arrow = if app.view.sort_inverted { "▲" } else { "▼" };
    let title = format!(
        " futures {}-{} of {total_visible} · filter {} · sort {}{arrow}{}{focus} ",
        (offset + 1).min(total_visible),
        (offset + shown.len()).min(total_visible),
        app.view.filter.label(),
        app.view.sort.label(),
        if app.view.query.is_empty() { String::new() } else { format!(" · /{}", app.view.query) },
    );
    let mut heads = ["name", "pool", "state", "worker", "time", "result / why"].map(str::to_owned);
    if let Some(c) = app.view.sort.column() {
        heads[c].push_str(arrow);
    }
    let heads: Vec<String> = columns.iter().map(|&(c, w)| cut(&heads[c], w)).collect();
    let widths: Vec<Constraint> =
        columns.iter().map(|&(_, w)| Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX))).collect();
    let table = Table::new(rows, widths)
        .header(TableRow::new(heads).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::bordered().title(cut(&title, usize::from(area.width.saturating_sub(2)))));
    f.render_widget(table, area);
    if total_visible == 0 && area.height > 3 && area.width > 4 {
        let why = if !app.view.query.is_empty() {
            format!("no task matches '{}'", app.view.query)
        } else if app.view.filter != super::app::Filter::All {
            format!("no task is {} (f changes the filter)", app.view.filter.label())
        } else {
            "no task yet".to_owned()
        };
        let line = Rect { x: area.x + 1, y: area.y + 2, width: area.width - 2, height: 1 };
        f.render_widget(Paragraph::new(cut(&why, usize::from(line.width))), line);
    }
    geometry
}

/// Draws the workers panel; returns its last scroll position (its last line at the
/// bottom of the box).
fn draw_workers(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme, compact: bool) -> usize {
    if area.width == 0 || area.height == 0 {
        return 0;
    }
    let focus = if app.view.pane == Pane::Workers { " [focus]" } else { "" };
    let block = Block::bordered().title(format!(" workers{focus} "));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let mut y = inner.y;
    let pools = app.view.frozen.as_ref().map_or(&app.model.pools, |f| &f.pools);
    let lines: usize = pools.iter().map(|p| 1 + if compact { 0 } else { p.workers.len() }).sum();
    let max = lines.saturating_sub(usize::from(inner.height));
    // Lines scrolled away (Tab gives the panel the focus, then ↑↓ scroll it).
    let mut skip = if compact { 0 } else { app.view.workers_scroll.min(max) };
    for p in pools {
        if y >= inner.bottom() {
            break;
        }
        if skip > 0 {
            skip -= 1;
            let hidden = skip.min(p.workers.len());
            skip -= hidden;
            draw_worker_lines(f, app, p, hidden, &mut y, inner, theme);
            continue;
        }
        let queued = p.queued;
        let busy = p.workers.iter().filter(|w| w.current.is_some()).count();
        let broken = if p.broken.is_some() { " BROKEN" } else { "" };
        let kind = p.kind.map_or("", PoolKind::as_str);
        let unseen = match p.hidden_workers {
            0 => String::new(),
            n => format!(", {n} workers not shown"),
        };
        let head = format!("{} ({kind}, {busy}/{} busy, {queued} queued{unseen}){broken}", p.name, p.max_workers);
        let spark_w = inner.width.saturating_sub(u16::try_from(head.chars().count()).unwrap_or(0) + 1).min(30);
        f.render_widget(
            Paragraph::new(Span::styled(head.clone(), Style::default().add_modifier(Modifier::BOLD))),
            Rect { x: inner.x, y, width: inner.width, height: 1 },
        );
        if spark_w > 4 {
            let data: Vec<u64> = p.busy_history.iter().rev().take(usize::from(spark_w)).rev().copied().collect();
            let x = inner.right() - spark_w;
            f.render_widget(
                Sparkline::default().data(&data).max(p.max_workers as u64).style(theme.fg(Color::Cyan)),
                Rect { x, y, width: spark_w, height: 1 },
            );
        }
        y += 1;
        if compact {
            continue;
        }
        draw_worker_lines(f, app, p, 0, &mut y, inner, theme);
    }
    max
}

/// `width` cells of busy `█`, blocked `▓` and idle `░`, in proportion to `(busy,
/// blocked, idle)`.
fn time_bar((busy, blocked, idle): (f64, f64, f64), width: usize) -> String {
    let all = busy + blocked + idle;
    if all <= 0.0 {
        return "░".repeat(width);
    }
    let cells = |x: f64| ((x / all) * width as f64).round() as usize;
    let b = cells(busy).min(width);
    let k = cells(blocked).min(width - b);
    format!("{}{}{}", "█".repeat(b), "▓".repeat(k), "░".repeat(width - b - k))
}

/// The lines of `pool`'s workers from the `from`-th on, down from screen row `row`.
fn draw_worker_lines(
    f: &mut Frame<'_>,
    app: &App,
    pool: &PoolView,
    from: usize,
    row: &mut u16,
    inner: Rect,
    theme: Theme,
) {
    for w in pool.workers.iter().skip(from) {
        if *row >= inner.bottom() {
            break;
        }
        let task = w.current.and_then(|id| app.row(id));
        let (word, style) = match task {
            None if !w.alive => ("exited", theme.fg(Color::DarkGray)),
            None => ("idle", theme.fg(Color::Gray)),
            Some(r) if !r.waits_on.is_empty() => ("blocked", theme.fg(Color::Red)),
            Some(_) => ("busy", theme.fg(Color::Cyan)),
        };
        // A process worker's CPU and memory first (fixed width), then its task, then
        // its pid: what the line has no room for is cut from the end.
        let res = match (w.cpu, w.mem, &w.load) {
            (Some(c), Some(m), _) => format!("{c:>3.0}% {:>5}", bytes(m)),
            (_, _, Some(load)) => load.clone(),
            _ => String::new(),
        };
        let pid = w.pid.map_or_else(String::new, |p| format!("pid {p}"));
        let name = format!("  {:<9} ", cut(&w.name, 9));
        // Where its time went, a stacked bar: busy █, blocked in a wait ▓, idle ░.
        // (A paused view's at the time it was paused.)
        let now = app.view.frozen.as_ref().map_or(app.model.now, |f| f.now);
        let bar = if inner.width >= 44 { time_bar(w.time.split(now), 8) + " " } else { String::new() };
        let room = usize::from(inner.width).saturating_sub(name.chars().count() + 8);
        let what = [res.as_str(), task.map_or("", |r| &*r.name), pid.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("  ");
        let room = room.saturating_sub(bar.chars().count());
        let line = Line::from(vec![
            Span::raw(name),
            Span::styled(format!("{word:<8}"), style),
            Span::styled(bar, theme.fg(Color::DarkGray)),
            Span::raw(cut(&what, room)),
        ]);
        f.render_widget(Paragraph::new(line), Rect { x: inner.x, y: *row, width: inner.width, height: 1 });
        *row += 1;
    }
}

fn draw_footer(f: &mut Frame<'_>, app: &App, area: Rect, _theme: Theme) {
    let first = if let Some(s) = &app.view.search {
        format!(" search: {s}▏ (name: pool: state: error: !not · Enter keeps, Esc clears, Ctrl-U, Ctrl-W)")
    } else if let Some(q) = &app.view.confirm {
        format!(" {}", q.prompt)
    } else if let Some(s) = &app.view.status {
        format!(" {s}")
    } else {
        app.model.log.back().map_or_else(String::new, |l| format!(" {l}"))
    };
    // The keys that fit, in one order and the same words at every width: the least
    // needed go first when the line is short; `?` lists every key.
    let live: &[(&str, u8)] = &[
        ("q quit", 0),
        ("? help", 0),
        ("↑↓ move", 9),
        ("⏎ details", 1),
        ("c cancel", 2),
        ("x kill", 2),
        ("C cancel pool", 5),
        ("b break", 2),
        ("/ search", 3),
        ("f filter", 6),
        ("s sort", 6),
        ("w graph", 4),
        ("t timeline", 4),
        ("␣ pause", 7),
    ];
    let replay: &[(&str, u8)] = &[
        ("q quit", 0),
        ("? help", 0),
        ("␣ pause", 1),
        (". step", 1),
        (", back", 1),
        ("n N next/prev failure", 3),
        ("+ faster", 1),
        ("- slower", 1),
        ("↑↓ move", 9),
        ("⏎ details", 2),
        ("/ search", 3),
        ("f filter", 6),
        ("s sort", 6),
        ("w graph", 4),
        ("t timeline", 5),
    ];
    let items = if app.read_only { replay } else { live };
    let keys_up_to = |max: u8| {
        let kept: Vec<&str> = items.iter().filter(|(_, p)| *p <= max).map(|(k, _)| *k).collect();
        format!(" {}", kept.join("  "))
    };
    let keys = (0..=9u8)
        .rev()
        .map(keys_up_to)
        .find(|l| l.chars().count() <= usize::from(area.width))
        .unwrap_or_else(|| keys_up_to(0));
    f.render_widget(
        Paragraph::new(vec![
            Line::from(cut(&first, usize::from(area.width))),
            Line::from(keys).style(Style::default().add_modifier(Modifier::DIM)),
        ]),
        area,
    );
}

/// Draws one task's details; returns the last scroll position (the last line at the
/// bottom of the box), which the next keys clamp to.
fn draw_detail(f: &mut Frame<'_>, app: &App, id: u64, area: Rect, theme: Theme) -> u16 {
    let Some(r) = app.row(id) else {
        f.render_widget(Paragraph::new("no such task").block(Block::bordered()), area);
        return 0;
    };
    let mut lines: Vec<Line<'_>> = vec![
        Line::from(vec![
            Span::styled(format!("{} ", r.name), Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(format!("{} {}", r.state.symbol(), r.state.word()), theme.state(r.state)),
            Span::raw(format!(
                "  pool {}  worker {}  id {}",
                r.pool,
                r.worker.as_deref().unwrap_or("-"),
                if r.unsubmitted > 0 { "-".to_owned() } else { format!("#{}", r.id) }
            )),
        ]),
        Line::from(format!(
            "submitted {}  started {}  ended {}  ran {}",
            secs(r.submitted),
            r.started.map_or("-".into(), secs),
            r.ended.map_or("-".into(), secs),
            r.duration(app.model.now).map_or("-".into(), secs)
        )),
    ];
    let args = app.plan.as_ref().and_then(|p| p.task_index(&r.name).map(|i| p.args_of(i)));
    if let Some(args) = args.filter(|a| a.as_object().is_some_and(|o| !o.is_empty())) {
        lines.push(Line::from(format!("args: {}", cut(&args.to_string(), 400))));
    }
    if let Some(v) = &r.result {
        lines.push(Line::from(format!("result: {}", cut(&v.to_string(), 400))));
    }
    if let Some(e) = &r.error {
        lines.push(Line::styled(format!("error: {e}"), theme.fg(Color::Red)));
    }
    if let Some(why) = app.model.why(r) {
        lines.push(Line::from(format!("why: {why}")));
    }
    if let Some(a) = r.attempts.as_deref() {
        lines.push(Line::from(format!("attempts: {} of {} allowed", a.attempt, a.of)));
        for (k, (id, t, how)) in a.earlier.iter().enumerate() {
            lines.push(Line::from(format!("  {}  #{id}  ended {}  {how}", k + 1, secs(*t))));
        }
        if a.next_at.is_none() {
            let how = if r.state.is_final() { r.outcome() } else { r.state.word().to_owned() };
            lines.push(Line::from(format!("  {}  #{}  {how}", a.attempt, r.id)));
        }
    }
    let waits: Vec<String> =
        r.waits_on.iter().map(|w| app.row(*w).map_or_else(|| format!("#{w}"), |x| x.name.to_string())).collect();
    let by: Vec<String> = app.waited_by(id).iter().map(|x| x.name.to_string()).collect();
    lines.push(Line::from(format!(
        "waits on: {}   waited on by: {}",
        if waits.is_empty() { "-".into() } else { waits.join(", ") },
        if by.is_empty() { "-".into() } else { by.join(", ") }
    )));
    // Where it stands on the dependency graph: on the critical path, or its slack.
    let entry = app.plan.as_ref().and_then(|p| p.task_index(&r.name).and_then(|i| p.locate(i)).map(|(e, _)| e));
    if let (Some(e), Some(cp)) = (entry, entry.and_then(|_| app.critical_path())) {
        let line = if cp.path.contains(&e) {
            "critical path: on it (any delay here makes the run longer)".to_owned()
        } else {
            format!("critical path: not on it; slack {} (it could take that much longer)", secs(cp.timings[e].slack))
        };
        lines.push(Line::from(line));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled("timeline", Style::default().add_modifier(Modifier::BOLD)));
    for (t, what) in &r.timeline() {
        lines.push(Line::from(format!("  {:>8}  {what}", secs(*t))));
    }
    if let Some(out) = r.output.as_deref() {
        lines.push(Line::from(""));
        let earlier = match out.earlier {
            0 => String::new(),
            1 => " (1 earlier line not shown)".to_owned(),
            n => format!(" ({n} earlier lines not shown)"),
        };
        lines.push(Line::styled(
            format!("output: the last {} lines, both streams{earlier}", out.lines.len()),
            Style::default().add_modifier(Modifier::BOLD),
        ));
        for (stream, l) in &out.lines {
            // stderr marked in words too, so it reads the same without colour.
            match stream {
                futuretop_engine::Stream::Stdout => lines.push(Line::from(format!("  {l}"))),
                futuretop_engine::Stream::Stderr => {
                    lines.push(Line::styled(format!("! {l}"), theme.fg(Color::Red)));
                }
            }
        }
    }
    let block =
        Block::bordered().title(cut(" details (↑↓ g G scroll, Esc back) ", usize::from(area.width.saturating_sub(2))));
    let inner = block.inner(area);
    let text = Paragraph::new(Text::from(lines)).wrap(Wrap { trim: false });
    let max = u16::try_from(text.line_count(inner.width).saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX);
    f.render_widget(text.scroll((app.view.detail_scroll.min(max), 0)).block(block), area);
    max
}

/// Draws the `depends_on` graph with its critical path marked, and each task's time and
/// slack; returns its last scroll position.
fn draw_critical(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme) -> u16 {
    let title = " depends_on graph: ● the critical path (↑↓ g G scroll, p or Esc back) ";
    let block = Block::bordered().title(cut(title, usize::from(area.width.saturating_sub(2))));
    let inner = block.inner(area);
    let mut lines: Vec<Line<'_>> = Vec::new();
    match (app.plan.as_ref(), app.critical_path()) {
        (Some(plan), Some(cp)) => {
            let chain: Vec<String> = cp.path.iter().map(|&t| quote(&plan.tasks[t].name)).collect();
            lines.push(Line::styled(
                format!(" critical path: {} — {} of a {} run", chain.join(" → "), secs(cp.length), secs(app.model.now)),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            lines.push(Line::from(""));
            let width = plan.tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(4).clamp(4, 24);
            let on_path: std::collections::HashSet<usize> = cp.path.iter().copied().collect();
            for (t, task) in plan.tasks.iter().enumerate() {
                let tm = cp.timings[t];
                let after: Vec<&str> = cp.deps[t].iter().map(|&d| plan.tasks[d].name.as_str()).collect();
                let critical = on_path.contains(&t);
                let text = format!(
                    " {} {:<width$}  {:>7}  ends {:>7}  slack {:>7}  after: {}",
                    if critical { "●" } else { " " },
                    cut(&task.name, width),
                    secs(tm.weight),
                    secs(tm.finish),
                    if critical { "–".to_owned() } else { secs(tm.slack) },
                    if after.is_empty() { "-".to_owned() } else { after.join(", ") },
                );
                lines.push(if critical {
                    Line::styled(text, theme.fg(Color::Red).add_modifier(Modifier::BOLD))
                } else {
                    Line::from(text)
                });
            }
        }
        _ => lines.push(Line::from(" no plan here: the critical path is shown while a task file runs")),
    }
    let text = Paragraph::new(lines).wrap(Wrap { trim: false });
    let max = u16::try_from(text.line_count(inner.width).saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX);
    f.render_widget(text.scroll((app.view.detail_scroll.min(max), 0)).block(block), area);
    max
}

/// Draws the wait-for graph; returns its last scroll position.
fn draw_graph(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme) -> u16 {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let in_deadlock = |id: u64| app.model.deadlocks.iter().any(|d| d.ids.contains(&id));
    for r in app.model.rows.iter().filter(|r| !r.waits_on.is_empty()) {
        for w in &r.waits_on {
            let target = app.row(*w);
            let tname = target.map_or_else(|| format!("#{w}"), |t| t.name.to_string());
            let tstate = target.map_or("?", |t| {
                if t.state == RowState::Running && !t.waits_on.is_empty() {
                    "blocked"
                } else {
                    t.state.word()
                }
            });
            let stuck = in_deadlock(r.id) && in_deadlock(*w);
            let style = if stuck { theme.fg(Color::Red).add_modifier(Modifier::BOLD) } else { Style::default() };
            lines.push(Line::styled(
                format!(
                    "  {} ({}) ──waits on──▶ {tname} ({tstate}){}",
                    r.name,
                    r.pool,
                    if stuck { "   ← deadlock" } else { "" }
                ),
                style,
            ));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from("  no task is waiting on another future"));
    }
    for d in &app.model.deadlocks {
        lines.push(Line::from(""));
        let cycle = d.tasks.iter().map(|t| quote(t)).collect::<Vec<_>>().join(" → ");
        lines.push(Line::styled(format!("  {}: {cycle}", d.kind), theme.fg(Color::Red)));
        lines.push(Line::from(format!("  {}", d.message)));
    }
    let block = Block::bordered()
        .title(cut(" wait-for graph (↑↓ g G scroll, w or Esc back) ", usize::from(area.width.saturating_sub(2))));
    let inner = block.inner(area);
    let text = Paragraph::new(lines).wrap(Wrap { trim: false });
    let max = u16::try_from(text.line_count(inner.width).saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX);
    f.render_widget(text.scroll((app.view.detail_scroll.min(max), 0)).block(block), area);
    max
}

/// Draws the timeline, a line a worker and the time axis; returns its last scroll
/// position.
fn draw_timeline(f: &mut Frame<'_>, app: &App, area: Rect, theme: Theme) -> u16 {
    let block = Block::bordered().title(cut(
        " timeline: tasks per worker over time (↑↓ g G scroll, t or Esc back) ",
        usize::from(area.width.saturating_sub(2)),
    ));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let label_w: u16 = 14;
    let width = inner.width.saturating_sub(label_w);
    if width < 4 {
        return 0;
    }
    let lines = app.model.pools.iter().map(|p| p.workers.len()).sum::<usize>() + 1;
    let max = u16::try_from(lines.saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX);
    let mut skip = usize::from(app.view.detail_scroll.min(max));
    let end = app.model.now.max(0.1);
    let scale = f64::from(width) / end;
    let mut y = inner.y;
    for p in &app.model.pools {
        for w in &p.workers {
            if y >= inner.bottom() {
                return max;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let mut cells = vec![' '; usize::from(width)];
            let mut colors = vec![None; usize::from(width)];
            for &(s, e, id) in &w.spans {
                let a = ((s * scale) as usize).min(cells.len().saturating_sub(1));
                let b = ((e.unwrap_or(end) * scale).ceil() as usize).clamp(a + 1, cells.len());
                let st = app.row(id).map_or(RowState::Done, |r| r.state);
                let ch = app.row(id).and_then(|r| r.name.chars().next()).unwrap_or('#');
                for (i, c) in cells.iter_mut().enumerate().take(b).skip(a) {
                    *c = if i == a { ch } else { '━' };
                    colors[i] = Some(st);
                }
            }
            let mut spans = vec![Span::raw(format!("{:<14}", cut(&w.name, 13)))];
            for (c, st) in cells.iter().zip(colors) {
                spans.push(match st {
                    Some(s) => Span::styled(c.to_string(), theme.state(s)),
                    None => Span::raw(c.to_string()),
                });
            }
            f.render_widget(Paragraph::new(Line::from(spans)), Rect { x: inner.x, y, width: inner.width, height: 1 });
            y += 1;
        }
    }
    if y < inner.bottom() {
        let axis = format!("{:<14}0{:>w$}", "", secs(end), w = usize::from(width).saturating_sub(1));
        f.render_widget(Paragraph::new(axis), Rect { x: inner.x, y, width: inner.width, height: 1 });
    }
    max
}

/// The keys of a help line: actions the preferences can rebind, or fixed keys.
#[derive(Debug, Clone, Copy)]
pub enum HelpKeys {
    /// The keys bound to these actions, as bound.
    Bound(&'static [Bind]),
    /// Keys no preference changes.
    Fixed(&'static str),
}

/// The help overlay: every key, and what it does.
pub const HELP: &[(HelpKeys, &str)] = &[
    (HelpKeys::Bound(&[Bind::Quit, Bind::Detach]), "quit (asks first while tasks run); detach: the run goes on"),
    (HelpKeys::Fixed("Ctrl-C"), "stop the run and quit (attached: detach)"),
    (HelpKeys::Bound(&[Bind::Help]), "this help"),
    (HelpKeys::Bound(&[Bind::Down, Bind::Up]), "move"),
    (HelpKeys::Bound(&[Bind::PageDown, Bind::PageUp]), "a page down, up"),
    (HelpKeys::Bound(&[Bind::Top, Bind::Bottom]), "first, last"),
    (HelpKeys::Bound(&[Bind::Details, Bind::Back]), "details of the selected task; back"),
    (HelpKeys::Bound(&[Bind::Cancel]), "cancel the selected task (pending only, as Future.cancel)"),
    (HelpKeys::Bound(&[Bind::Kill]), "kill the selected running task"),
    (HelpKeys::Bound(&[Bind::CancelPool]), "cancel every pending task of its pool"),
    (HelpKeys::Bound(&[Bind::Break]), "break the shown deadlock (its last waiter gets DeadlockError)"),
    (HelpKeys::Bound(&[Bind::Resubmit]), "run a failed, cancelled or killed task again"),
    (HelpKeys::Bound(&[Bind::Search]), "filter as you type (name: pool: state: error:, ! negates)"),
    (HelpKeys::Bound(&[Bind::Filter]), "cycle the state filter"),
    (
        HelpKeys::Bound(&[Bind::Sort, Bind::SortPrevious, Bind::SortNext, Bind::InvertSort]),
        "cycle the sort; sort by the previous, next column; invert",
    ),
    (HelpKeys::Bound(&[Bind::SwitchPane]), "switch pane (↑↓ then scroll the workers)"),
    (HelpKeys::Bound(&[Bind::Graph]), "wait-for graph"),
    (
        HelpKeys::Bound(&[Bind::Timeline, Bind::CriticalPath]),
        "timeline of the workers; depends_on graph, critical path",
    ),
    (HelpKeys::Bound(&[Bind::Pause]), "pause the view (the run goes on); in a replay, pause it"),
    (
        HelpKeys::Bound(&[Bind::Step, Bind::StepBack, Bind::NextMark, Bind::PreviousMark, Bind::Faster, Bind::Slower]),
        "replay: step ±1; next, previous failure or deadlock; speed",
    ),
    (HelpKeys::Bound(&[Bind::Yes]), "yes, to a question (x, C, b, r, c with dependents ask first)"),
    (HelpKeys::Fixed("mouse"), "click selects, on a head sorts; Shift-drag selects text"),
];

/// The help's lines with `keys` as bound: (the keys, what they do).
pub fn help(keys: &Keymap) -> Vec<(String, &'static str)> {
    HELP.iter()
        .map(|(k, what)| {
            let shown = match k {
                HelpKeys::Fixed(s) => (*s).to_owned(),
                HelpKeys::Bound(binds) => binds.iter().map(|&b| keys.shown(b)).collect::<Vec<_>>().join(" "),
            };
            (shown, *what)
        })
        .collect()
}

fn draw_help(f: &mut Frame<'_>, app: &App, area: Rect) {
    // At 80 columns the longest line (b's, 78 characters with the border) is not cut.
    let w = area.width.min(80);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let rect = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    let lines: Vec<Line<'_>> = help(&app.keys).iter().map(|(k, what)| Line::from(format!(" {k:<15} {what}"))).collect();
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(" keys (any key closes, and does nothing else) ")),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventKind};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    /// The key table of docs/tui.md, as the help overlay lists the keys.
    fn help_table() -> String {
        let mut t = String::from("| Key | What it does |\n|---|---|\n");
        for (k, what) in help(&Keymap::default()) {
            t.push_str(&format!("| `{k}` | {what} |\n"));
        }
        t
    }

    /// docs/tui.md's key table is the help overlay's, word for word: a key added to
    /// one and not the other fails here (the message holds the table to paste).
    #[test]
    fn the_documented_keys_are_the_help_overlays() {
        let doc = include_str!("../../docs/tui.md");
        let table = help_table();
        assert!(doc.contains(&table), "docs/tui.md must hold the help overlay's key table:\n{table}");
    }

    /// The key line drops keys as the screen narrows, never renames one.
    #[test]
    fn the_key_line_says_the_same_words_at_every_width() {
        let app = App::new();
        let wide = {
            let mut t = Terminal::new(TestBackend::new(300, 20)).unwrap();
            t.draw(|f| {
                draw(f, &app, Theme { color: false, ..Theme::default() });
            })
            .unwrap();
            let buf = t.backend().buffer().clone();
            (0..300).map(|x| buf[(x, 19)].symbol().to_owned()).collect::<String>()
        };
        let all: Vec<&str> = wide.trim().split("  ").collect();
        assert!(all.len() >= 12, "{wide}");
        for w in 40..300u16 {
            let mut t = Terminal::new(TestBackend::new(w, 20)).unwrap();
            t.draw(|f| {
                draw(f, &app, Theme { color: false, ..Theme::default() });
            })
            .unwrap();
            let buf = t.backend().buffer().clone();
            let line: String = (0..w).map(|x| buf[(x, 19)].symbol()).collect();
            for item in line.trim().split("  ") {
                assert!(all.contains(&item), "{item:?} at {w} columns is not one of {all:?}");
            }
        }
    }

    #[test]
    fn the_detail_view_shows_a_plan_tasks_arguments() {
        let mut app = App::new();
        let yaml = "tasks:\n  - { name: p, call: pow, args: { exp: 2 }, map: { base: [5, 7] } }\n";
        let plan = crate::config::load_str_offline("t.yaml", "t", yaml).expect("a valid file");
        app.plan = Some(std::sync::Arc::new(plan));
        app.apply_event(&Event {
            seq: 1,
            t: 0.0,
            kind: EventKind::Pending { attempt: None, task: "p[1]".into(), id: 1, pool: "io".into() },
        });
        app.view.screen = View::Detail(1);
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal
            .draw(|f| {
                draw(f, &app, Theme { color: false, ..Theme::default() });
            })
            .unwrap();
        let text: String = terminal.backend().buffer().content().iter().map(ratatui::buffer::Cell::symbol).collect();
        assert!(text.contains(r#"args: {"exp":2,"base":7}"#), "{text}");
    }

    #[test]
    fn an_attached_monitor_says_when_it_is_catching_up_on_the_log() {
        let mut app = App::new();
        app.attachment = crate::tui::app::Attachment::Following;
        app.apply_event(&Event {
            seq: 1,
            t: 0.0,
            kind: EventKind::Pending { attempt: None, task: "p".into(), id: 1, pool: "io".into() },
        });
        let header = |app: &App| {
            let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
            terminal
                .draw(|f| {
                    draw(f, app, Theme { color: false, ..Theme::default() });
                })
                .unwrap();
            let b = terminal.backend().buffer();
            (0..100).map(|x| b[(x, 0)].symbol().to_owned()).collect::<String>()
        };
        app.attachment = crate::tui::app::Attachment::CatchingUp;
        assert!(header(&app).contains("running · catching up on its log…"), "{}", header(&app));
        // The run's own count, from its status file, beside the monitor's (1 future).
        app.run_count = Some((52_000, 100_000));
        assert!(header(&app).contains("catching up on its log… (the run: 52000/100000 done)"), "{}", header(&app));
        app.attachment = crate::tui::app::Attachment::Following;
        assert!(!header(&app).contains("catching up"), "{}", header(&app));
        assert!(!header(&app).contains("the run:"), "{}", header(&app));
    }
}
