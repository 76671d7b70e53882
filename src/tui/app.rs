//! The monitor's state: the run model it shows, and its own view state (selection, filter, sort, scroll, overlays); a pure reducer over run events and user actions, tested without a terminal.

use std::borrow::Cow;

use crate::control::Control;
use crate::events::Event;
use crate::model::{Change, Keep, SAMPLE_GRACE};
pub use crate::model::{
    DeadlockView, PoolView, Row, RowError, RowState, RunModel, StateCounts, SysStats, WorkerView, SAMPLE_PERIOD,
};
use futuretop_engine::observe::FutureId;

/// Which rows the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every future.
    #[default]
    All,
    /// Pending and running.
    Active,
    /// Failed only.
    Failed,
    /// Done only.
    Done,
    /// Cancelled only.
    Cancelled,
}

impl Filter {
    /// Every filter, in `f`'s order.
    pub const ALL: [Self; 5] = [Self::All, Self::Active, Self::Failed, Self::Done, Self::Cancelled];

    fn next(self) -> Self {
        match self {
            Self::All => Self::Active,
            Self::Active => Self::Failed,
            Self::Failed => Self::Done,
            Self::Done => Self::Cancelled,
            Self::Cancelled => Self::All,
        }
    }

    /// Its name in the footer.
    pub const fn label(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }

    fn keeps(self, s: RowState) -> bool {
        match self {
            Self::All => true,
            Self::Active => !s.is_final(),
            Self::Failed => s == RowState::Failed,
            Self::Done => s == RowState::Done,
            Self::Cancelled => s == RowState::Cancelled,
        }
    }
}

/// The table's order: submission order, or by one of its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Submission order.
    #[default]
    Submitted,
    /// By name.
    Name,
    /// By pool, then submission.
    Pool,
    /// By state (running first), then submission.
    State,
    /// By worker, then submission.
    Worker,
    /// Longest running first.
    Duration,
    /// By result or error text.
    Result,
}

impl Sort {
    /// `s`: submitted, state, duration, name.
    fn next(self) -> Self {
        match self {
            Self::Submitted => Self::State,
            Self::State => Self::Duration,
            Self::Duration => Self::Name,
            Self::Name | Self::Pool | Self::Worker | Self::Result => Self::Submitted,
        }
    }

    /// The sorts in the table's column order (`<` and `>` move along it).
    pub const COLUMNS: [Self; 7] =
        [Self::Submitted, Self::Name, Self::Pool, Self::State, Self::Worker, Self::Duration, Self::Result];

    /// The next (`>`) or previous (`<`) column.
    fn step(self, forward: bool) -> Self {
        let n = Self::COLUMNS.len();
        let i = Self::COLUMNS.iter().position(|&c| c == self).unwrap_or(0);
        Self::COLUMNS[if forward { (i + 1) % n } else { (i + n - 1) % n }]
    }

    /// Its name in the table's title.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Name => "name",
            Self::Pool => "pool",
            Self::State => "state",
            Self::Worker => "worker",
            Self::Duration => "duration",
            Self::Result => "result",
        }
    }

    /// The table column it sorts by (0 = name ... 5 = result), if any.
    pub const fn column(self) -> Option<usize> {
        match self {
            Self::Submitted => None,
            Self::Name => Some(0),
            Self::Pool => Some(1),
            Self::State => Some(2),
            Self::Worker => Some(3),
            Self::Duration => Some(4),
            Self::Result => Some(5),
        }
    }
}

/// What `/` filters by: terms combined with AND, each `[!][FIELD:]TEXT`, where FIELD is
/// `name`, `pool`, `state` or `error`; a term without a field matches any of them. Text
/// matches a part, whatever its case; `!` negates the term (`state:failed !pool:io`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negate: bool,
    field: Option<Field>,
    text: String,
}

/// A field a query term can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Pool,
    State,
    Error,
}

impl Query {
    /// Parses what the user typed (never fails: an unknown `field:` is text).
    pub fn parse(text: &str) -> Self {
        let terms = text
            .split_whitespace()
            .filter_map(|word| {
                let (negate, word) = match word.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, word),
                };
                let (field, text) = match word.split_once(':') {
                    Some(("name", t)) => (Some(Field::Name), t),
                    Some(("pool", t)) => (Some(Field::Pool), t),
                    Some(("state", t)) => (Some(Field::State), t),
                    Some(("error", t)) => (Some(Field::Error), t),
                    _ => (None, word),
                };
                (!text.is_empty()).then(|| Term { negate, field, text: text.to_lowercase() })
            })
            .collect();
        Self { terms }
    }

    /// True when it keeps every row.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether a row's state can change what it says: a term on `state:`, `error:`, or
    /// on any field.
    fn reads_state(&self) -> bool {
        self.terms.iter().any(|t| matches!(t.field, None | Some(Field::State | Field::Error)))
    }

    /// Whether `row` passes every term.
    pub fn matches(&self, row: &Row) -> bool {
        self.terms.iter().all(|t| {
            let has = |s: &str| s.to_lowercase().contains(&t.text);
            let state = || {
                if row.state == RowState::Running && !row.waits_on.is_empty() {
                    "blocked"
                } else {
                    row.state.word()
                }
            };
            let error = || row.error.as_ref().map(ToString::to_string).unwrap_or_default();
            let hit = match t.field {
                Some(Field::Name) => has(&row.name),
                Some(Field::Pool) => has(&row.pool),
                Some(Field::State) => has(state()),
                Some(Field::Error) => has(&error()),
                None => has(&row.name) || has(&row.pool) || has(state()) || has(&error()),
            };
            hit != t.negate
        })
    }
}

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The table and the workers panel.
    #[default]
    Main,
    /// One task's details.
    Detail(u64),
    /// The wait-for graph.
    Graph,
    /// Tasks per worker over time.
    Timeline,
    /// The `depends_on` graph and its critical path.
    Critical,
}

/// Which pane has the focus (`Tab`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    /// The futures table.
    #[default]
    Tasks,
    /// The workers panel.
    Workers,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move the selection by this many rows.
    Move(i64),
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// A page up or down.
    Page(i64),
    /// Select the row at this position among the visible rows (a mouse click).
    Click(usize),
    /// Open the selected task's details.
    Open,
    /// Back to the main screen (or close an overlay).
    Back,
    /// Cancel the selected task (pending only).
    Cancel,
    /// Kill the selected task (running only).
    Kill,
    /// Cancel every pending task of the selected task's pool.
    CancelPool,
    /// Break the shown deadlock.
    Break,
    /// Start a search.
    SearchStart,
    /// A character typed into the search.
    SearchChar(char),
    /// Delete the last search character.
    SearchBackspace,
    /// Clear the search text (`Ctrl-U`).
    SearchClear,
    /// Delete the search text's last word (`Ctrl-W`).
    SearchDeleteWord,
    /// End the search (keep the match selected).
    SearchEnd,
    /// Next state filter.
    CycleFilter,
    /// Next sort order.
    CycleSort,
    /// Sort by the next (`>`, true) or previous (`<`) column.
    SortColumn(bool),
    /// Invert the sort (`I`).
    InvertSort,
    /// Pause or resume the live view (Space).
    Pause,
    /// Resubmit the selected task (`r`; to come with retries: a replay refuses it).
    Resubmit,
    /// Sort by this column (a click on its head); again on the same one inverts it.
    SortBy(Sort),
    /// Switch panes.
    SwitchPane,
    /// The wait-for graph.
    Graph,
    /// The timeline.
    Timeline,
    /// The dependency graph and its critical path.
    Critical,
    /// Toggle the help overlay.
    Help,
    /// Quit (asks first while tasks run; attached, asks whether to detach or stop the run).
    Quit,
    /// Leave an attached monitor; the run goes on.
    Detach,
    /// Stop the run this monitor is attached to (the answer `s` to the quit question).
    StopRun,
    /// Yes, at the quit question.
    Confirm,
    /// Stop the run now (Ctrl-C).
    Interrupt,
    /// A tick of the clock (for sparklines).
    Tick,
}

/// A question before an action that cannot be undone (`x`, `C`, `c` on a task with
/// dependents, `b`): `y` does it; any other key does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The question, with what the action will take down (`kill 'build': running 12.3s
    /// on cpu-1, pid 4101?`).
    pub prompt: String,
    /// What `y` sends: its target held by future id, whatever the selection does meanwhile.
    pub control: Control,
}

/// What a paused live view keeps showing (Space): the table's page and the workers panel
/// as they were, and the clock. Events are still taken in: the header's counts stay
/// exact, and acting keys act on the run as it is now.
#[derive(Debug, Clone)]
pub struct Frozen {
    /// The rows on screen, top to bottom.
    pub rows: Vec<Row>,
    /// The pools and their workers.
    pub pools: Vec<PoolView>,
    /// The run clock when paused.
    pub now: f64,
}

/// A replay's pace: how fast the log is played, and whether it is paused. The feeder and
/// the screen keep one each, moved by the same keys through [`ReplayPace::apply`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayPace {
    /// Times the recorded pace (1/16 to 64).
    pub speed: f64,
    /// Paused (Space).
    pub paused: bool,
}

impl Default for ReplayPace {
    fn default() -> Self {
        Self { speed: 1.0, paused: false }
    }
}

impl ReplayPace {
    /// Takes one replay key (a step moves nothing here: the feeder sends one event).
    pub fn apply(&mut self, key: super::input::ReplayKey) {
        use super::input::ReplayKey;
        match key {
            ReplayKey::Pause => self.paused = !self.paused,
            ReplayKey::Faster => self.speed = (self.speed * 2.0).min(64.0),
            ReplayKey::Slower => self.speed = (self.speed / 2.0).max(1.0 / 16.0),
            // A jump stops where it lands.
            ReplayKey::StepBack | ReplayKey::NextMark | ReplayKey::PreviousMark => self.paused = true,
            ReplayKey::Step => {}
        }
    }

    /// `paused`, or the speed (`2x`, `0.5x`).
    pub fn label(self) -> String {
        if self.paused {
            "paused".to_owned()
        } else {
            format!("{}x", self.speed)
        }
    }
}

/// What the app asks its host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send this to the runner.
    Control(Control),
    /// Leave the monitor.
    Exit,
    /// Leave the monitor, the run going on in the background (`d` on a run in the
    /// foreground: [`crate::keeper`]).
    Detach,
}

/// Where the last frame put what the next key needs: the table's page size, the screen
/// row of its first data row and its width (for mouse clicks). [`draw`](super::ui::draw)
/// returns it; the host hands it to the next frame's state with [`App::set_geometry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Rows the table can show.
    pub page: usize,
    /// The screen row of the table's first data row.
    pub table_top: u16,
    /// The screen columns the table spans, from its left edge (0 when no table is shown,
    /// so clicks elsewhere select nothing).
    pub table_width: u16,
    /// The detail view's, the graph's or the timeline's last scroll position: its last
    /// line at the bottom of the box.
    pub detail_max: u16,
    /// The workers panel's last scroll position.
    pub workers_max: usize,
    /// The table's column heads, left to right: the screen column each ends before, and
    /// the sort it stands for (a click on a head sorts by it). Unused places are `None`.
    pub heads: [Option<(u16, Sort)>; 6],
}

impl Default for Geometry {
    fn default() -> Self {
        Self { page: 10, table_top: 0, table_width: 0, detail_max: 0, workers_max: 0, heads: [None; 6] }
    }
}

impl Geometry {
    /// The sort of the column head at screen column `x`, if a head is there.
    pub fn head_at(&self, x: u16) -> Option<Sort> {
        self.heads.iter().flatten().find(|(end, _)| x < *end).map(|&(_, sort)| sort)
    }
}

/// What the monitor shows of the run, and how: everything that is not the run's data.
#[derive(Debug, Default)]
pub struct ViewState {
    /// The screen.
    pub screen: View,
    /// The focused pane.
    pub pane: Pane,
    /// The selected future's id (the selection follows it when rows reorder).
    pub selected: Option<u64>,
    /// The first visible row.
    pub offset: usize,
    /// The state filter.
    pub filter: Filter,
    /// The sort order.
    pub sort: Sort,
    /// The sort inverted (`I`).
    pub sort_inverted: bool,
    /// The search text; `Some` while typing.
    pub search: Option<String>,
    /// The last search, applied as a filter on names.
    pub query: String,
    /// Lines scrolled in the detail view, the graph or the timeline (whichever is up).
    pub detail_scroll: u16,
    /// Lines scrolled in the workers panel (when it has the focus).
    pub workers_scroll: usize,
    /// The help overlay is up.
    pub help: bool,
    /// The quit question is up.
    pub confirm_quit: bool,
    /// A question before a destructive action is up.
    pub confirm: Option<Confirmation>,
    /// A replay's pace, as the header shows it.
    pub replay: ReplayPace,
    /// The live view paused (Space): what the table and the workers panel showed.
    pub frozen: Option<Frozen>,
    /// A message for the user (the answer to their last key).
    pub status: Option<String>,
    /// The last frame's geometry.
    pub geometry: Geometry,
    /// The visible rows' order, until something changes it.
    order: Option<Vec<usize>>,
}

/// Whether a monitor is attached to a detached run (`futuretop attach`): then `q` asks
/// whether to detach or to stop the run, and Ctrl-C and `d` detach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Attachment {
    /// It shows a run it runs, or a replay.
    #[default]
    No,
    /// Attached, and up to date with the run's log.
    Following,
    /// Attached, and the run's log has more than it has taken in yet: the header says so.
    CatchingUp,
}

/// Whether `d` can send a run in the foreground to the background ([`crate::keeper`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detachable {
    /// It can.
    Yes,
    /// It cannot, for this reason (said on `d`).
    No(String),
}

impl Default for Detachable {
    fn default() -> Self {
        Self::No("it is not a run in the foreground".into())
    }
}

/// The monitor's whole state.
#[derive(Debug, Default)]
pub struct App {
    /// The run, as its events tell it.
    pub model: RunModel,
    /// How it is shown.
    pub view: ViewState,
    /// The plan being run, when the host knows it: the detail view shows a future's
    /// arguments from it (made when shown, not kept per row).
    pub plan: Option<std::sync::Arc<crate::config::Plan>>,
    /// A replay: commands are not sent.
    pub read_only: bool,
    /// Attached to a detached run (`futuretop attach`), or not.
    pub attachment: Attachment,
    /// The run's own count, `(done, total)`, from its status file: while an attached
    /// monitor catches up (or yields to a run that floods its log), the header shows it
    /// beside the monitor's own.
    pub run_count: Option<(usize, usize)>,
    /// Whether `d` sends the run, in the foreground, to the background.
    pub detachable: Detachable,
    /// The monitor asked the run to stop (Ctrl-C, `y`): `d` has nothing left to detach.
    stopping: bool,
    /// `x`, `C`, `c` on a task with dependents and `b` act at once, without a question.
    pub skip_confirmation: bool,
    /// Which key does what (the preferences file's `keys:`).
    pub keys: super::input::Keymap,
}

impl App {
    /// Attached to a detached run.
    pub fn attached(&self) -> bool {
        self.attachment != Attachment::No
    }

    /// `d` on a run that is not attached: sends a run in the foreground to the
    /// background, or says why it cannot.
    fn detach(&mut self) -> Option<Command> {
        match &self.detachable {
            _ if self.model.finished.is_some() || self.read_only => {
                self.view.status = Some("the run has ended: nothing to detach".into());
                None
            }
            _ if self.stopping => {
                self.view.status = Some("the run is stopping: nothing to detach".into());
                None
            }
            Detachable::Yes => Some(Command::Detach),
            Detachable::No(why) => {
                self.view.status = Some(format!("this run cannot be detached: {why}"));
                None
            }
        }
    }

    /// An empty app.
    pub fn new() -> Self {
        Self { model: RunModel::new(Keep::All), ..Self::default() }
    }

    /// An empty app, set up by the preferences: keys, confirmations, first sort and filter.
    pub fn with_prefs(prefs: &crate::prefs::Prefs) -> Self {
        let mut app = Self::new();
        app.keys = prefs.keys.clone();
        app.skip_confirmation = !prefs.confirm;
        app.view.sort = prefs.sort;
        app.view.sort_inverted = prefs.sort_inverted;
        app.view.filter = prefs.filter;
        app.view.query.clone_from(&prefs.query);
        app
    }

    /// The row of future `id`.
    pub fn row(&self, id: u64) -> Option<&Row> {
        self.model.row(id)
    }

    /// Takes in one run event. A log's first event (`seq` 1) coming again is a replay
    /// stepping back: the run is taken in again from its start, the view kept.
    pub fn apply_event(&mut self, e: &Event) {
        if e.seq == 1 && self.read_only && self.model.seq_seen > 0 {
            self.model = RunModel::new(Keep::All);
            self.view.order = None;
            self.view.frozen = None;
        }
        let change = self.model.apply(e);
        if self.model.take_rows_moved() {
            self.view.order = None;
            return;
        }
        match change {
            Change::Nothing => {}
            Change::Added(i) => {
                let plain = self.plain_order();
                match self.view.order.as_mut() {
                    // A new row at the end: the plain order just grows.
                    Some(order) if plain => order.push(i),
                    _ => self.view.order = None,
                }
            }
            // Submission order over every row does not change with states.
            Change::State => {
                if self.view.filter != Filter::All
                    || (!self.view.query.is_empty() && Query::parse(&self.view.query).reads_state())
                    || matches!(self.view.sort, Sort::State | Sort::Duration | Sort::Worker | Sort::Result)
                {
                    self.view.order = None;
                }
            }
            Change::Moved => self.view.order = None,
        }
    }

    /// Takes in the events pending on `events`, for at most `budget`, so that a flood
    /// of events never delays the next frame (what is left waits for the next turn).
    pub fn drain(&mut self, events: &crossbeam_channel::Receiver<std::sync::Arc<Event>>, budget: std::time::Duration) {
        let deadline = std::time::Instant::now() + budget;
        for (i, e) in events.try_iter().enumerate() {
            self.apply_event(&e);
            if i % 256 == 255 && std::time::Instant::now() >= deadline {
                break;
            }
        }
    }

    /// Every row, in submission order: the table's position of a row is its index.
    fn plain_order(&self) -> bool {
        self.view.filter == Filter::All
            && self.view.sort == Sort::Submitted
            && !self.view.sort_inverted
            && self.view.query.is_empty()
    }

    /// Futures per state, as the header counts them.
    pub fn counts(&self) -> StateCounts {
        self.model.counts()
    }

    /// The rows the table shows, in order (indices into the model's rows): the order
    /// kept since the last change, or worked out now.
    pub fn visible(&self) -> Cow<'_, [usize]> {
        match &self.view.order {
            Some(order) => Cow::Borrowed(order),
            None => Cow::Owned(self.order()),
        }
    }

    /// Works the table's order out from the rows, the filter, the search and the sort.
    fn order(&self) -> Vec<usize> {
        let rows = &self.model.rows;
        let q = Query::parse(&self.view.query);
        let mut v: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                let r = &rows[i];
                self.view.filter.keeps(r.state) && (q.is_empty() || q.matches(r))
            })
            .collect();
        let now = self.model.now;
        match self.view.sort {
            Sort::Submitted => {}
            Sort::Pool => v.sort_by(|&a, &b| rows[a].pool.cmp(&rows[b].pool).then(a.cmp(&b))),
            Sort::Worker => v.sort_by(|&a, &b| rows[a].worker.cmp(&rows[b].worker).then(a.cmp(&b))),
            Sort::Result => {
                let texts: Vec<String> = v.iter().map(|&i| rows[i].outcome()).collect();
                let mut pairs: Vec<(String, usize)> = texts.into_iter().zip(v.iter().copied()).collect();
                pairs.sort();
                v = pairs.into_iter().map(|(_, i)| i).collect();
            }
            Sort::State => v.sort_by_key(|&i| {
                let s = rows[i].state;
                (
                    match s {
                        RowState::Running => 0,
                        RowState::Pending => 1,
                        RowState::Failed => 2,
                        RowState::Cancelled => 3,
                        RowState::Done => 4,
                    },
                    i,
                )
            }),
            Sort::Duration => {
                v.sort_by(|&a, &b| {
                    let da = rows[a].duration(now).unwrap_or(-1.0);
                    let db = rows[b].duration(now).unwrap_or(-1.0);
                    db.total_cmp(&da).then(a.cmp(&b))
                });
            }
            Sort::Name => v.sort_by(|&a, &b| rows[a].name.cmp(&rows[b].name).then(a.cmp(&b))),
        }
        if self.view.sort_inverted {
            v.reverse();
        }
        v
    }

    /// Keeps the table's order for the frames to come, and the selection on screen:
    /// the host calls it before it draws (drawing only reads).
    pub fn prepare(&mut self) {
        if self.view.order.is_none() {
            self.view.order = Some(self.order());
        }
        self.scroll_to_selection();
    }

    /// Takes the geometry the last frame returned (see [`Geometry`]).
    pub fn set_geometry(&mut self, geometry: Geometry) {
        if self.view.geometry != geometry {
            self.view.geometry = geometry;
            self.scroll_to_selection();
        }
    }

    /// The position of the selection among the visible rows.
    pub fn selected_pos(&self) -> Option<usize> {
        let sel = self.view.selected?;
        let i = self.model.index_of(sel)?;
        if self.plain_order() {
            // Every row in submission order: the position is the index (no scan of
            // 100,000 rows per frame).
            return Some(i);
        }
        self.visible().iter().position(|&r| r == i)
    }

    /// The first row the table shows: the view's offset, moved as little as needed for
    /// the selection to be on a page of `page` rows.
    pub fn first_shown(&self, page: usize) -> usize {
        let page = page.max(1);
        let mut offset = self.view.offset;
        if let Some(pos) = self.selected_pos() {
            if pos < offset {
                offset = pos;
            } else if pos >= offset + page {
                offset = pos + 1 - page;
            }
        }
        offset.min(self.visible().len().saturating_sub(1))
    }

    fn select_pos(&mut self, pos: usize) {
        let row = self.visible().get(pos).copied();
        let id = row.map(|i| self.model.rows[i].id);
        if id.is_some() {
            self.view.selected = id;
        }
        self.scroll_to_selection();
    }

    /// Keeps the selection on screen (selecting the first row if none is, or if the
    /// selected task left the view: keys never act on a row the user cannot see).
    pub fn scroll_to_selection(&mut self) {
        // A paused view keeps its rows and its selection among them: a key acts on the
        // row highlighted, even one the run has since moved out of the filter.
        if self.view.frozen.is_some() {
            return;
        }
        if self.view.order.is_none() {
            self.view.order = Some(self.order());
        }
        if self.selected_pos().is_none() {
            let first = self.visible().first().copied();
            self.view.selected = first.map(|i| self.model.rows[i].id);
        }
        self.view.offset = self.first_shown(self.view.geometry.page);
    }

    fn selected_row(&self) -> Option<&Row> {
        self.view.selected.and_then(|id| self.model.row(id))
    }

    fn send(&mut self, c: Control) -> Option<Command> {
        if self.read_only {
            self.view.status = Some("a replay is read-only".into());
            return None;
        }
        Some(Command::Control(c))
    }

    /// Takes in one user action; returns what the host must do, if anything.
    #[allow(clippy::too_many_lines, clippy::needless_pass_by_value)] // one arm per action; actions are small values
    pub fn apply(&mut self, action: Action) -> Option<Command> {
        // The clock and Ctrl-C pass through every mode: a tick must not answer the quit
        // question or end a search, and Ctrl-C stops the run whatever is on screen.
        match action {
            Action::Tick => {
                // A quiet stretch: take the samples that no event has brought, once any
                // late event before them has surely arrived.
                if self.model.finished.is_none() && !self.read_only {
                    self.model.sample_until(self.model.now - SAMPLE_GRACE);
                }
                return None;
            }
            Action::Interrupt if self.attached() => return Some(Command::Exit),
            Action::Interrupt => {
                self.view.confirm_quit = false;
                self.view.search = None;
                return Some(self.interrupt());
            }
            _ => {}
        }
        if self.view.confirm_quit {
            self.view.confirm_quit = false;
            if self.attached() {
                return match action {
                    Action::Detach => Some(Command::Exit),
                    Action::StopRun => {
                        self.view.status = Some("stopping the run...".into());
                        Some(Command::Control(Control::Interrupt))
                    }
                    _ => {
                        self.view.status = Some("quit cancelled".into());
                        None
                    }
                };
            }
            return match action {
                Action::Confirm | Action::Quit => {
                    if self.read_only {
                        return Some(Command::Exit);
                    }
                    self.view.status = Some("stopping the run...".into());
                    self.stopping = true;
                    Some(Command::Control(Control::Interrupt))
                }
                Action::Detach => self.detach(),
                _ => {
                    self.view.status = Some("quit cancelled".into());
                    None
                }
            };
        }
        if let Some(text) = self.view.search.as_mut() {
            match action {
                Action::SearchChar(c) => text.push(c),
                Action::SearchBackspace => {
                    text.pop();
                }
                Action::SearchClear => text.clear(),
                Action::SearchDeleteWord => {
                    let kept = text
                        .trim_end()
                        .char_indices()
                        .rev()
                        .find(|(_, c)| c.is_whitespace())
                        .map_or(0, |(i, c)| i + c.len_utf8());
                    text.truncate(kept);
                }
                Action::SearchEnd | Action::Open => {
                    self.view.search = None;
                    return None;
                }
                Action::Back => {
                    self.view.search = None;
                    self.view.query.clear();
                    self.view.order = None;
                    return None;
                }
                _ => return None,
            }
            self.view.query = self.view.search.clone().unwrap_or_default();
            self.view.order = None;
            // Select the first match.
            if let Some(i) = self.visible().first().copied() {
                self.view.selected = Some(self.model.rows[i].id);
                self.view.offset = 0;
            }
            return None;
        }
        if self.view.help {
            // The key that closes an overlay does nothing else.
            self.view.help = false;
            return None;
        }
        if let Some(question) = self.view.confirm.take() {
            if action == Action::Confirm {
                return self.confirmed(question.control);
            }
            self.view.status = Some("nothing done".into());
            return None;
        }
        self.view.status = None;
        if self.view.frozen.is_some() {
            match action {
                Action::Move(_) | Action::Top | Action::Bottom | Action::Page(_) | Action::Click(_)
                    if self.view.screen == View::Main && self.view.pane == Pane::Tasks =>
                {
                    self.move_in_frozen(&action);
                    return None;
                }
                // A new order or filter is a new view: the pause ends.
                Action::CycleFilter
                | Action::CycleSort
                | Action::SortColumn(_)
                | Action::InvertSort
                | Action::SortBy(_)
                | Action::SearchStart => self.view.frozen = None,
                _ => {}
            }
        }
        if self.read_only
            && matches!(action, Action::Cancel | Action::Kill | Action::CancelPool | Action::Break | Action::Resubmit)
        {
            self.view.status = Some("a replay is read-only".into());
            return None;
        }
        match action {
            Action::Move(d) if self.scrolling_view() => {
                let s = i64::from(self.view.detail_scroll) + d;
                self.view.detail_scroll =
                    u16::try_from(s.max(0)).unwrap_or(u16::MAX).min(self.view.geometry.detail_max);
            }
            Action::Top if self.scrolling_view() => self.view.detail_scroll = 0,
            Action::Bottom if self.scrolling_view() => {
                self.view.detail_scroll = self.view.geometry.detail_max;
            }
            Action::Move(d) if self.workers_focused() => {
                let s = i64::try_from(self.view.workers_scroll).unwrap_or(0) + d;
                self.view.workers_scroll = usize::try_from(s.max(0)).unwrap_or(0).min(self.view.geometry.workers_max);
            }
            Action::Top if self.workers_focused() => self.view.workers_scroll = 0,
            Action::Bottom if self.workers_focused() => self.view.workers_scroll = self.view.geometry.workers_max,
            Action::Move(d) => {
                let len = self.visible().len();
                if len > 0 {
                    let cur = self.selected_pos().unwrap_or(0);
                    let pos = usize::try_from((i64::try_from(cur).unwrap_or(0) + d).max(0)).unwrap_or(0).min(len - 1);
                    self.select_pos(pos);
                }
            }
            Action::Page(d) => {
                return self.apply(Action::Move(d * i64::try_from(self.view.geometry.page.max(1)).unwrap_or(1)))
            }
            Action::Top => self.select_pos(0),
            Action::Bottom => {
                let len = self.visible().len();
                self.select_pos(len.saturating_sub(1));
            }
            Action::Click(row) => self.select_pos(self.view.offset + row),
            Action::Open => {
                self.scroll_to_selection();
                if let Some(id) = self.view.selected {
                    self.view.screen = View::Detail(id);
                    self.view.detail_scroll = 0;
                }
            }
            Action::Back => {
                if self.view.screen == View::Main && !self.view.query.is_empty() {
                    self.view.query.clear();
                    self.view.order = None;
                }
                self.view.screen = View::Main;
            }
            Action::Cancel => {
                self.scroll_to_selection();
                let r = self.selected_row()?;
                let (id, name, state, unsubmitted) = (r.id, r.name.clone(), r.state, r.unsubmitted);
                if unsubmitted > 0 {
                    // The row of a map's items not yet handed to their pool (`name[…]`), or
                    // of a task that waits on others.
                    let Some(map) = name.strip_suffix("[…]") else {
                        self.view.status = Some(format!("cancelling {} (not yet submitted)", quote(&name)));
                        return self.send(Control::CancelUnsubmitted(name.to_string()));
                    };
                    let map = map.to_owned();
                    self.view.status =
                        Some(format!("cancelling the {unsubmitted} items of {} not yet submitted", quote(&map)));
                    return self.send(Control::CancelUnsubmitted(map));
                }
                if state == RowState::Pending {
                    let dependents = self
                        .plan
                        .as_ref()
                        .and_then(|p| p.task_index(&name).map(|i| p.dependents_of(&[i], &[])))
                        .unwrap_or(0);
                    if dependents > 0 {
                        let prompt = format!(
                            "cancel {}? {} will be cancelled with it",
                            quote(&name),
                            count(dependents, "dependent")
                        );
                        return self.ask(&prompt, Control::Cancel(FutureId(id)));
                    }
                    self.view.status = Some(format!("cancelling {}", quote(&name)));
                    return self.send(Control::Cancel(FutureId(id)));
                }
                self.view.status = Some(format!(
                    "cannot cancel {}: it is {} (cancel stops pending tasks only; [x] kills a running one)",
                    quote(&name),
                    state.word()
                ));
            }
            Action::Kill => {
                self.scroll_to_selection();
                let r = self.selected_row()?;
                let (id, name, state) = (r.id, r.name.clone(), r.state);
                if state == RowState::Running {
                    let r = self.selected_row()?;
                    let mut prompt = format!("kill {}: running", quote(&name));
                    if let Some(d) = r.duration(self.model.now) {
                        prompt.push_str(&format!(" {d:.1}s"));
                    }
                    if let Some(w) = &r.worker {
                        prompt.push_str(&format!(" on {w}"));
                    }
                    if let Some(pid) = r.pid {
                        prompt.push_str(&format!(", pid {pid}"));
                    }
                    prompt.push('?');
                    return self.ask(&prompt, Control::Kill(FutureId(id)));
                }
                self.view.status = Some(format!(
                    "cannot kill {}: it is {} (only a running task can be killed)",
                    quote(&name),
                    state.word()
                ));
            }
            Action::CancelPool => {
                self.scroll_to_selection();
                let pool = self.selected_row().map(|r| r.pool.clone())?;
                let prompt = self.cancel_pool_preview(&pool);
                return self.ask(&prompt, Control::CancelPool(pool.to_string()));
            }
            Action::Break => {
                let Some(d) = self.model.deadlocks.first() else {
                    self.view.status = Some("no deadlock to break".into());
                    return None;
                };
                let victim = d.victim_id?;
                let name = self.model.row(victim).map_or_else(|| format!("#{victim}"), |r| r.name.to_string());
                let cycle = d.tasks.iter().map(|t| quote(t)).collect::<Vec<_>>().join(" → ");
                let prompt = format!("break the deadlock {cycle}: the wait of {} gets a DeadlockError?", quote(&name));
                return self.ask(&prompt, Control::BreakWait(FutureId(victim)));
            }
            Action::SearchStart => {
                self.view.search = Some(String::new());
                self.view.screen = View::Main;
            }
            Action::SearchChar(_)
            | Action::SearchBackspace
            | Action::SearchClear
            | Action::SearchDeleteWord
            | Action::SearchEnd
            | Action::Confirm => {}
            Action::CycleFilter => {
                self.view.filter = self.view.filter.next();
                self.view.order = None;
                self.view.offset = 0;
                self.scroll_to_selection();
            }
            Action::CycleSort => {
                self.view.sort = self.view.sort.next();
                self.view.order = None;
                self.scroll_to_selection();
            }
            Action::SortColumn(forward) => {
                self.view.sort = self.view.sort.step(forward);
                self.view.order = None;
                self.scroll_to_selection();
            }
            Action::Resubmit => {
                self.scroll_to_selection();
                let r = self.selected_row()?;
                let name = r.name.to_string();
                if r.unsubmitted > 0 || !matches!(r.state, RowState::Failed | RowState::Cancelled) {
                    self.view.status = Some(format!(
                        "cannot resubmit {}: it is {} (r runs a failed, cancelled or killed task again)",
                        quote(&name),
                        r.state.word()
                    ));
                    return None;
                }
                if let Some(RowError::Cancelled(
                    crate::events::CancelReason::DependencyFailed(d)
                    | crate::events::CancelReason::DependencyCancelled(d),
                )) = r.error.as_deref()
                {
                    self.view.status = Some(format!(
                        "cannot resubmit {}: it was cancelled because of {}; resubmit that one and it follows",
                        quote(&name),
                        quote(d)
                    ));
                    return None;
                }
                let dependents = self
                    .plan
                    .as_ref()
                    .and_then(|p| p.task_index(&name).map(|i| p.dependents_of(&[i], &[])))
                    .unwrap_or(0);
                let prompt = if dependents > 0 {
                    format!("resubmit {} and its {}?", quote(&name), count(dependents, "cancelled dependent"))
                } else {
                    format!("resubmit {}?", quote(&name))
                };
                return self.ask(&prompt, Control::Resubmit(name));
            }
            Action::Pause => {
                if self.view.frozen.take().is_none() {
                    self.prepare();
                    let page = self.view.geometry.page.max(1);
                    let offset = self.first_shown(page);
                    let rows =
                        self.visible().iter().skip(offset).take(page).map(|&i| self.model.rows[i].clone()).collect();
                    self.view.frozen = Some(Frozen { rows, pools: self.model.pools.clone(), now: self.model.now });
                    self.view.status = Some("paused: the view stands still, the run goes on (Space resumes)".into());
                } else {
                    self.view.status = Some("resumed".into());
                }
            }
            Action::SortBy(sort) => {
                if self.view.sort == sort {
                    self.view.sort_inverted = !self.view.sort_inverted;
                } else {
                    self.view.sort = sort;
                    self.view.sort_inverted = false;
                }
                self.view.order = None;
                self.scroll_to_selection();
            }
            Action::InvertSort => {
                self.view.sort_inverted = !self.view.sort_inverted;
                self.view.order = None;
                self.scroll_to_selection();
            }
            Action::SwitchPane => {
                self.view.pane = match self.view.pane {
                    Pane::Tasks => Pane::Workers,
                    Pane::Workers => Pane::Tasks,
                };
            }
            Action::Graph => {
                self.view.screen = if self.view.screen == View::Graph { View::Main } else { View::Graph };
                self.view.detail_scroll = 0;
            }
            Action::Timeline => {
                self.view.screen = if self.view.screen == View::Timeline { View::Main } else { View::Timeline };
                self.view.detail_scroll = 0;
            }
            Action::Critical => {
                self.view.screen = if self.view.screen == View::Critical { View::Main } else { View::Critical };
                self.view.detail_scroll = 0;
            }
            Action::Help => self.view.help = true,
            Action::Detach if self.attached() => return Some(Command::Exit),
            Action::Detach => return self.detach(),
            Action::StopRun => {}
            Action::Quit if self.attached() && self.model.finished.is_none() => {
                self.view.confirm_quit = true;
                self.view.status = Some("detach (d) or stop the run (s)?".into());
            }
            Action::Quit => {
                let running = self.model.finished.is_none() && !self.read_only;
                if running {
                    self.view.confirm_quit = true;
                    let active = self.model.rows.iter().filter(|r| !r.state.is_final()).count();
                    let detach = if self.detachable == Detachable::Yes { " (d: detach, the run goes on)" } else { "" };
                    self.view.status =
                        Some(format!("{} still running: quit and stop them? [y/N]{detach}", count(active, "task")));
                } else {
                    return Some(Command::Exit);
                }
            }
            Action::Interrupt => return Some(self.interrupt()),
            Action::Tick => {}
        }
        None
    }

    /// A move of the selection within a paused view's rows.
    fn move_in_frozen(&mut self, action: &Action) {
        let Some(frozen) = &self.view.frozen else { return };
        let len = frozen.rows.len();
        if len == 0 {
            return;
        }
        let cur = frozen.rows.iter().position(|r| Some(r.id) == self.view.selected).unwrap_or(0);
        let page = i64::try_from(self.view.geometry.page.max(1)).unwrap_or(1);
        let to = |d: i64| usize::try_from((i64::try_from(cur).unwrap_or(0) + d).max(0)).unwrap_or(0).min(len - 1);
        let pos = match *action {
            Action::Move(d) => to(d),
            Action::Page(d) => to(d * page),
            Action::Top => 0,
            Action::Bottom => len - 1,
            Action::Click(row) => row.min(len - 1),
            _ => cur,
        };
        self.view.selected = Some(frozen.rows[pos].id);
    }

    /// The detail view, the graph or the timeline: the arrows, pages, `g` and `G` scroll it.
    fn scrolling_view(&self) -> bool {
        matches!(self.view.screen, View::Detail(_) | View::Graph | View::Timeline | View::Critical)
    }

    fn workers_focused(&self) -> bool {
        self.view.screen == View::Main && self.view.pane == Pane::Workers
    }

    /// Asks `prompt` before sending `control` (at once when confirmation is off).
    fn ask(&mut self, prompt: &str, control: Control) -> Option<Command> {
        if self.skip_confirmation {
            return self.confirmed(control);
        }
        self.view.status = None;
        self.view.confirm = Some(Confirmation { prompt: format!("{prompt} [y/N]"), control });
        None
    }

    /// `y` to a question: sends its control, if its target is still what the question
    /// said (a task that ended meanwhile is not acted on).
    fn confirmed(&mut self, control: Control) -> Option<Command> {
        let name_of = |app: &Self, id: u64| app.model.row(id).map_or_else(|| format!("#{id}"), |r| quote(&r.name));
        // A kill needs its task still running, a cancel still pending.
        let still_is = |app: &Self, id: u64, state: RowState, doing: &str| {
            let name = name_of(app, id);
            if app.model.row(id).is_some_and(|r| r.state == state) {
                (format!("{doing} {name}"), true)
            } else {
                (format!("{name} is no longer {}: nothing done", state.word()), false)
            }
        };
        let (status, still) = match &control {
            Control::Kill(FutureId(id)) => still_is(self, *id, RowState::Running, "killing"),
            Control::Cancel(FutureId(id)) => still_is(self, *id, RowState::Pending, "cancelling"),
            Control::BreakWait(FutureId(id)) => {
                if self.model.deadlocks.iter().any(|d| d.victim_id == Some(*id)) {
                    (format!("breaking the deadlock: the wait of {} gets a DeadlockError", name_of(self, *id)), true)
                } else {
                    ("the deadlock is gone: nothing done".to_owned(), false)
                }
            }
            Control::CancelPool(pool) => (format!("cancelling the pending tasks of pool {}", quote(pool)), true),
            Control::Resubmit(name) => (format!("resubmitting {}", quote(name)), true),
            _ => (String::new(), true),
        };
        self.view.status = Some(status);
        if still {
            self.send(control)
        } else {
            None
        }
    }

    /// What `C` on `pool` will do: `cancel 60 pending tasks of pool 'io'; 7 dependents
    /// will be cancelled; 4 running tasks are not touched?`.
    fn cancel_pool_preview(&self, pool: &str) -> String {
        let mut pending = 0usize;
        let mut running = 0usize;
        let mut futures = Vec::new();
        let mut tasks = Vec::new();
        for r in self.model.rows.iter().filter(|r| &*r.pool == pool) {
            match r.state {
                RowState::Pending if r.unsubmitted > 0 => {
                    pending += r.unsubmitted;
                    let map = r.name.strip_suffix("[…]").unwrap_or(&r.name);
                    tasks.extend(self.plan.as_ref().and_then(|p| p.task_position(map)));
                }
                RowState::Pending => {
                    pending += 1;
                    futures.extend(self.plan.as_ref().and_then(|p| p.task_index(&r.name)));
                }
                RowState::Running => running += 1,
                _ => {}
            }
        }
        let mut prompt = format!("cancel {} of pool {}", count(pending, "pending task"), quote(pool));
        let dependents = self.plan.as_ref().map_or(0, |p| p.dependents_of(&futures, &tasks));
        if dependents > 0 {
            prompt.push_str(&format!("; {} will be cancelled", count(dependents, "dependent")));
        }
        if running > 0 {
            let verb = if running == 1 { "is" } else { "are" };
            prompt.push_str(&format!("; {} {verb} not touched", count(running, "running task")));
        }
        prompt.push('?');
        prompt
    }

    /// The plan's critical path now: each task weighs what it took (a `map:` task from its
    /// first item's start to its last item's end), or has taken so far while it runs.
    /// `None` without a plan (a replay).
    pub fn critical_path(&self) -> Option<crate::critical::CriticalPath> {
        let plan = self.plan.as_ref()?;
        let now = self.model.now;
        Some(crate::critical::compute(plan, |t| {
            let task = &plan.tasks[t];
            if !task.is_map() {
                return self.model.row_named(&task.name).and_then(|r| r.duration(now)).unwrap_or(0.0);
            }
            let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
            for k in 0..task.len {
                if let Some(r) = self.model.row_named(&format!("{}[{k}]", task.name)) {
                    if let Some(s) = r.started {
                        first = first.min(s);
                        last = last.max(r.ended.unwrap_or(now));
                    }
                }
            }
            if first.is_finite() {
                last - first
            } else {
                0.0
            }
        }))
    }

    /// Takes a replay key: the header shows the pace the feeder now keeps.
    pub fn replay_key(&mut self, key: super::input::ReplayKey) {
        self.view.replay.apply(key);
    }

    /// Ctrl-C: stop the run (or leave, when nothing runs).
    fn interrupt(&mut self) -> Command {
        if self.read_only || self.model.finished.is_some() {
            return Command::Exit;
        }
        self.view.status = Some("stopping the run...".into());
        self.stopping = true;
        Command::Control(Control::Interrupt)
    }

    /// Moves the run clock on to `t` seconds while the run is live, so that the elapsed
    /// time, running tasks' durations and a deadlock's countdown advance between events.
    /// The clock never goes back, and stops when the run has finished (its last event
    /// sets the final time).
    pub fn advance_clock(&mut self, t: f64) {
        if !self.read_only && self.model.advance_clock(t) && self.view.sort == Sort::Duration {
            self.view.order = None;
        }
    }

    /// Futures that wait on `id` now.
    pub fn waited_by(&self, id: u64) -> Vec<&Row> {
        self.model.waited_by(id)
    }
}

/// A name in quotes, as messages show names (`'b'`), so that a task called `b` is not
/// read as the key.
pub fn quote(name: &str) -> String {
    format!("'{name}'")
}

/// `1 task`, `3 tasks`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ErrorInfo, EventKind, PoolInfo};
    use crate::model::HISTORY;

    fn ev(seq: u64, t: f64, kind: EventKind) -> Event {
        Event { seq, t, kind }
    }

    fn started(app: &mut App) {
        app.apply_event(&ev(
            1,
            0.0,
            EventKind::RunStarted {
                version: 1,
                run: "r".into(),
                file: "f.yaml".into(),
                pools: vec![PoolInfo { name: "io".into(), kind: crate::pools::PoolKind::Thread, max_workers: 2 }],
                tasks: 3,
                maps: Vec::new(),
                waiting: vec![],
            },
        ));
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            app.apply_event(&ev(
                id + 1,
                0.1,
                EventKind::Pending { attempt: None, task: name.into(), id, pool: "io".into() },
            ));
        }
        app.apply_event(&ev(5, 0.2, EventKind::WorkerStarted { pool: "io".into(), worker: "io-1".into(), pid: None }));
        app.apply_event(&ev(
            6,
            0.3,
            EventKind::Running { task: "a".into(), id: 1, pool: "io".into(), worker: "io-1".into(), pid: None },
        ));
    }

    #[test]
    fn events_drive_states_counts_and_workers() {
        let mut app = App::new();
        started(&mut app);
        assert_eq!(app.row(1).map(|r| r.state), Some(RowState::Running));
        assert_eq!(app.model.pools[0].workers[0].current, Some(1));
        app.apply_event(&ev(
            7,
            1.0,
            EventKind::Exception {
                task: "a".into(),
                id: 1,
                pool: "io".into(),
                error: ErrorInfo { kind: futuretop_engine::ErrorKind::TaskError, message: "boom".into() },
            },
        ));
        assert_eq!(app.row(1).map(|r| r.state), Some(RowState::Failed));
        assert_eq!(app.model.pools[0].workers[0].current, None);
        assert_eq!(app.model.pools[0].workers[0].spans[0], (0.3, Some(1.0), 1));
        assert_eq!(app.counts().of(RowState::Failed), 1);
        assert_eq!(app.counts().finished(), 1);
    }

    /// A run of 6 s: `a` then `b` then `c` on one worker, each finishing at a whole second.
    fn six_seconds() -> Vec<Event> {
        let running = |seq, t, task: &str, id| {
            ev(
                seq,
                t,
                EventKind::Running { task: task.into(), id, pool: "io".into(), worker: "io-1".into(), pid: None },
            )
        };
        let done = |seq, t, task: &str, id| {
            ev(seq, t, EventKind::Done { task: task.into(), id, pool: "io".into(), result: serde_json::Value::Null })
        };
        vec![
            done(7, 2.0, "a", 1),
            running(8, 2.0, "b", 2),
            done(9, 3.75, "b", 2),
            running(10, 4.0, "c", 3),
            done(11, 6.0, "c", 3),
            ev(
                12,
                6.0,
                EventKind::RunFinished {
                    counts: crate::events::Counts { done: 3, ..crate::events::Counts::default() },
                    exit_code: 0,
                },
            ),
        ]
    }

    #[test]
    fn samples_depend_on_event_times_only_not_on_when_frames_or_ticks_came() {
        // A replay: events only, as fast as they come.
        let mut replayed = App::new();
        replayed.read_only = true;
        started(&mut replayed);
        for e in six_seconds() {
            replayed.apply_event(&e);
        }
        // A live run: the clock ticks every 0.25 s, and events arrive late (up to 0.9 s).
        let mut live = App::new();
        started(&mut live);
        let events = six_seconds();
        let mut next = 0;
        for step in 0..40 {
            let wall = f64::from(step) * 0.25;
            while next < events.len() && events[next].t + 0.9 <= wall {
                live.apply_event(&events[next]);
                next += 1;
            }
            live.advance_clock(wall);
            assert_eq!(live.apply(Action::Tick), None);
        }
        assert_eq!(next, events.len());
        let history = |app: &App| app.model.pools[0].busy_history.iter().copied().collect::<Vec<_>>();
        // One sample every half second up to 6 s: busy from 0.3 s on, idle in 3.75..4.
        assert_eq!(history(&replayed), [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1]);
        assert_eq!(history(&live), history(&replayed));
        // The finished run's rate is its average: 3 futures in 6 s.
        assert!((replayed.model.rate - 0.5).abs() < 1e-9, "{}", replayed.model.rate);
        assert!((live.model.rate - 0.5).abs() < 1e-9, "{}", live.model.rate);
        assert!((live.model.now - 6.0).abs() < 1e-9, "the clock stops at the last event, not at the last tick");
    }

    #[test]
    fn a_quiet_stretch_is_sampled_by_the_clock_and_a_hostile_time_does_not_hang() {
        let mut app = App::new();
        started(&mut app);
        app.advance_clock(3.2);
        app.apply(Action::Tick);
        // Samples at 0.5, 1.0, 1.5 and 2.0 s (1 s behind the clock): `a` runs.
        assert_eq!(app.model.pools[0].busy_history.iter().copied().collect::<Vec<_>>(), [1, 1, 1, 1]);
        app.model.sample_until(1e300);
        assert_eq!(app.model.pools[0].busy_history.len(), HISTORY);
    }

    #[test]
    fn cancel_of_a_running_task_is_refused_with_a_message() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::Top);
        assert_eq!(app.view.selected, Some(1));
        assert_eq!(app.apply(Action::Cancel), None);
        assert!(app.view.status.as_deref().unwrap_or("").contains("cannot cancel 'a': it is running"));
        app.apply(Action::Move(1));
        assert_eq!(app.apply(Action::Cancel), Some(Command::Control(Control::Cancel(FutureId(2)))));
        app.apply(Action::Top);
        assert_eq!(app.apply(Action::Kill), None, "a kill asks first");
        assert_eq!(app.apply(Action::Confirm), Some(Command::Control(Control::Kill(FutureId(1)))));
    }

    #[test]
    fn selection_follows_its_task_when_rows_reorder() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::Bottom);
        assert_eq!(app.view.selected, Some(3));
        app.apply(Action::CycleSort); // by state: running a first, then pending b, c
        assert_eq!(app.view.selected, Some(3));
        assert_eq!(app.selected_pos(), Some(2));
        app.apply_event(&ev(
            8,
            0.5,
            EventKind::Running { task: "c".into(), id: 3, pool: "io".into(), worker: "io-2".into(), pid: None },
        ));
        assert_eq!(app.view.selected, Some(3), "still c");
        assert_eq!(app.selected_pos(), Some(1), "c moved up among the running");
    }

    #[test]
    fn arrows_scroll_the_detail_view_and_the_focused_workers_panel() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::Top);
        app.apply(Action::Open);
        // What the last frame found: 5 lines below the box, one worker line below the panel.
        app.set_geometry(Geometry { detail_max: 5, workers_max: 1, ..app.view.geometry });
        app.apply(Action::Move(3));
        assert_eq!(app.view.detail_scroll, 3);
        app.apply(Action::Move(3));
        assert_eq!(app.view.detail_scroll, 5, "not past the end");
        assert_eq!(app.view.selected, Some(1), "the selection stays");
        app.apply(Action::Move(-5));
        assert_eq!(app.view.detail_scroll, 0);
        app.apply(Action::Back);
        app.apply(Action::SwitchPane);
        app.apply(Action::Move(1));
        assert_eq!(app.view.workers_scroll, 1);
        app.apply(Action::Move(10));
        assert_eq!(app.view.workers_scroll, 1, "one pool head and one worker: at most one line away");
        assert_eq!(app.view.selected, Some(1));
        app.apply(Action::SwitchPane);
        app.apply(Action::Move(1));
        assert_eq!(app.view.selected, Some(2), "the table has the arrows again");
    }

    #[test]
    fn drain_stops_when_its_time_is_up_and_the_rest_waits() {
        let (tx, rx) = crossbeam_channel::unbounded();
        for id in 1..=10_000 {
            tx.send(std::sync::Arc::new(ev(
                id,
                0.0,
                EventKind::Pending { attempt: None, task: format!("t{id}").into(), id, pool: "io".into() },
            )))
            .unwrap();
        }
        let mut app = App::new();
        app.drain(&rx, std::time::Duration::ZERO);
        assert_eq!(app.model.rows.len(), 256, "no time left: one batch, then the frame");
        app.drain(&rx, std::time::Duration::from_mins(1));
        assert_eq!(app.model.rows.len(), 10_000, "enough time: everything pending");
    }

    #[test]
    fn filter_and_search_narrow_the_rows() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::CycleFilter); // active
        assert_eq!(app.visible().len(), 3);
        app.apply(Action::CycleFilter); // failed
        assert_eq!(app.visible().len(), 0);
        app.apply(Action::CycleFilter);
        app.apply(Action::CycleFilter);
        app.apply(Action::CycleFilter); // all again
        assert_eq!(app.view.filter, Filter::All);
        app.apply(Action::SearchStart);
        app.apply(Action::SearchChar('c'));
        assert_eq!(app.visible().len(), 1);
        assert_eq!(app.view.selected, Some(3), "the first match is selected");
        app.apply(Action::SearchEnd);
        assert_eq!(app.apply(Action::Cancel), Some(Command::Control(Control::Cancel(FutureId(3)))));
        app.apply(Action::Back);
        assert_eq!(app.visible().len(), 3);
    }

    #[test]
    fn attached_q_asks_detach_or_stop_and_ctrl_c_and_d_detach() {
        let mut app = App::new();
        app.attachment = Attachment::Following;
        started(&mut app);
        // q asks; d detaches (the run goes on: nothing is sent to it).
        assert_eq!(app.apply(Action::Quit), None);
        assert_eq!(app.view.status.as_deref(), Some("detach (d) or stop the run (s)?"));
        assert_eq!(app.apply(Action::Detach), Some(Command::Exit));
        // q, then s, stops the run; q, then anything else, keeps the monitor.
        app.apply(Action::Quit);
        assert_eq!(app.apply(Action::StopRun), Some(Command::Control(Control::Interrupt)));
        app.apply(Action::Quit);
        assert_eq!(app.apply(Action::Confirm), None, "y is not an answer to detach or stop");
        assert_eq!(app.view.status.as_deref(), Some("quit cancelled"));
        // Ctrl-C and d detach at once.
        assert_eq!(app.apply(Action::Interrupt), Some(Command::Exit));
        assert_eq!(app.apply(Action::Detach), Some(Command::Exit));
        // Not attached, and no keeper: d says why the run cannot be detached, and does nothing.
        let mut app = App::new();
        started(&mut app);
        assert_eq!(app.apply(Action::Detach), None);
        assert_eq!(app.view.status.as_deref(), Some("this run cannot be detached: it is not a run in the foreground"));
    }

    /// A run in the foreground with a keeper: `d` sends it to the background, at once or
    /// as the answer to `q`'s question (which says so); once the run has ended there is
    /// nothing to detach.
    #[test]
    fn d_detaches_a_run_in_the_foreground_when_it_can() {
        let mut app = App::new();
        app.detachable = Detachable::Yes;
        started(&mut app);
        assert_eq!(app.apply(Action::Detach), Some(Command::Detach));
        assert_eq!(app.apply(Action::Quit), None);
        assert!(
            app.view.status.as_deref().is_some_and(|s| s.ends_with("[y/N] (d: detach, the run goes on)")),
            "{:?}",
            app.view.status
        );
        assert_eq!(app.apply(Action::Detach), Some(Command::Detach));
        // Without a keeper the question does not offer it.
        let mut plain = App::new();
        started(&mut plain);
        plain.apply(Action::Quit);
        assert!(plain.view.status.as_deref().is_some_and(|s| s.ends_with("[y/N]")), "{:?}", plain.view.status);
        // Stopping (Ctrl-C): nothing to detach.
        let mut stopping = App::new();
        stopping.detachable = Detachable::Yes;
        started(&mut stopping);
        assert_eq!(stopping.apply(Action::Interrupt), Some(Command::Control(Control::Interrupt)));
        assert_eq!(stopping.apply(Action::Detach), None);
        assert_eq!(stopping.view.status.as_deref(), Some("the run is stopping: nothing to detach"));
        // Ended: nothing to detach.
        app.model.finished = Some(0);
        assert_eq!(app.apply(Action::Detach), None);
        assert_eq!(app.view.status.as_deref(), Some("the run has ended: nothing to detach"));
    }

    #[test]
    fn quit_asks_while_tasks_run_and_break_needs_a_deadlock() {
        let mut app = App::new();
        started(&mut app);
        assert_eq!(app.apply(Action::Quit), None);
        assert!(app.view.confirm_quit);
        assert_eq!(app.apply(Action::Move(1)), None, "anything but y keeps running");
        assert!(!app.view.confirm_quit);
        app.apply(Action::Quit);
        assert_eq!(app.apply(Action::Confirm), Some(Command::Control(Control::Interrupt)));
        assert_eq!(app.apply(Action::Break), None);
        assert_eq!(app.view.status.as_deref(), Some("no deadlock to break"));
        app.apply_event(&ev(
            9,
            1.0,
            EventKind::Deadlock {
                kind: crate::deadlock::DeadlockKind::Cycle,
                tasks: vec!["a".into(), "b".into()],
                pool: None,
                message: "a waits on b and b waits on a".into(),
                ids: vec![1, 2],
                victim: Some("b".into()),
                victim_id: Some(2),
                expires_in: None,
            },
        ));
        assert_eq!(app.apply(Action::Break), None, "a break asks first");
        assert_eq!(app.apply(Action::Confirm), Some(Command::Control(Control::BreakWait(FutureId(2)))));
        app.apply_event(&ev(
            10,
            1.1,
            EventKind::DeadlockResolved {
                tasks: vec!["a".into(), "b".into()],
                how: crate::deadlock::Resolution::Break,
            },
        ));
        assert!(app.model.deadlocks.is_empty());
        app.apply_event(&ev(
            11,
            2.0,
            EventKind::RunFinished { counts: crate::events::Counts::default(), exit_code: 1 },
        ));
        assert_eq!(app.apply(Action::Quit), Some(Command::Exit), "nothing runs: quit at once");
    }
}
