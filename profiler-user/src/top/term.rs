//! The terminal side of `top`: keys to actions, a guard that always gives the terminal back
//! (drop, panic), and the interactive loop.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::model::{Model, SortBy};
use super::{Ended, Feed};

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Sort(SortBy),
    ToggleInlined,
    TogglePause,
    ToggleMode,
    Reset,
}

pub fn action(key: &KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') | KeyCode::Char('d') if ctrl => Action::Quit,
        _ if ctrl => return None,
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => Action::Quit,
        KeyCode::Char('1') | KeyCode::Char('o') => Action::Sort(SortBy::Own),
        KeyCode::Char('2') | KeyCode::Char('t') => Action::Sort(SortBy::Total),
        KeyCode::Char('3') => Action::Sort(SortBy::OwnTime),
        KeyCode::Char('4') => Action::Sort(SortBy::TotalTime),
        KeyCode::Char('i') => Action::ToggleInlined,
        KeyCode::Char(' ') | KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('c') => Action::ToggleMode,
        KeyCode::Char('r') => Action::Reset,
        _ => return None,
    })
}

/// Applies an action to the model; false for quit.
pub fn apply(model: &mut Model, a: Action) -> bool {
    match a {
        Action::Quit => return false,
        Action::Sort(s) => model.sort = s,
        Action::ToggleInlined => model.show_inlined = !model.show_inlined,
        Action::TogglePause => model.set_paused(!model.paused),
        Action::ToggleMode => model.toggle_mode(),
        Action::Reset => model.reset(),
    }
    true
}

/// The terminal is ours (raw mode, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back: cooked mode, main screen, cursor shown. Only the first call after
/// [`Guard::enter`] does anything: leaving the alternate screen twice would move the cursor
/// back over what was printed in between (a panic message).
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = terminal::disable_raw_mode();
    let mut out = std::io::stdout();
    let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}

/// Raw mode and the alternate screen while alive; restored on drop and on panic.
pub struct Guard {
    _private: (),
}

static HOOKED: AtomicBool = AtomicBool::new(false);
/// A thread panicked and the hook gave the terminal back: the view must not draw again.
static PANICKED: AtomicBool = AtomicBool::new(false);

impl Guard {
    pub fn enter() -> std::io::Result<Guard> {
        if !HOOKED.swap(true, Ordering::SeqCst) {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANICKED.store(true, Ordering::SeqCst);
                restore();
                previous(info);
            }));
        }
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = Guard { _private: () };
        terminal::enable_raw_mode()?;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide,
            terminal::Clear(terminal::ClearType::All)
        )?;
        Ok(guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Runs the interactive view until a quit key, a signal (`stop`) or the end of the pipeline.
pub fn run(feed: &mut Feed, model: &mut Model) -> std::io::Result<Ended> {
    let _guard = Guard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let mut dirty = true;
    // For the tests: a panic in the view once it shows data (the terminal must come back).
    let test_panic = std::env::var_os("GPROF_BPF_TOP_TEST_PANIC").is_some();
    loop {
        if let Some(end) = feed.poll(model, &mut dirty) {
            return Ok(end);
        }
        if PANICKED.load(Ordering::SeqCst) {
            // The pipeline's thread panicked (its message is on the main screen now).
            return Ok(super::Ended::Failed("a thread panicked".into()));
        }
        if dirty {
            let status = feed.status.clone();
            terminal.draw(|f| super::view::draw(f, model, &status))?;
            dirty = false;
            if test_panic && feed.windows_seen > 0 {
                panic!("GPROF_BPF_TOP_TEST_PANIC is set: a panic in the view");
            }
        }
        if event::poll(Duration::from_millis(100))? {
            match event::read()? {
                Event::Key(k) => {
                    if let Some(a) = action(&k) {
                        if !apply(model, a) {
                            return Ok(Ended::Quit);
                        }
                        dirty = true;
                    }
                }
                Event::Resize(..) => {
                    // Redraw everything: a shrink can leave stale cells otherwise.
                    terminal.autoresize()?;
                    terminal.clear()?;
                    dirty = true;
                }
                _ => {}
            }
        }
    }
}

/// Runs the plain view: one block per refresh interval on stdout until a signal or the end of
/// the pipeline (or stdout closing).
pub fn run_plain(feed: &mut Feed, model: &mut Model, rows: usize) -> std::io::Result<Ended> {
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(200);
    let mut out = std::io::stdout();
    loop {
        let mut fresh = false;
        if let Some(end) = feed.poll(model, &mut fresh) {
            return Ok(end);
        }
        if fresh && feed.windows_seen > 0 {
            let block = super::view::plain_block(model, &feed.status, width, rows);
            writeln!(out, "{block}")?;
            out.flush()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(c, m)
    }

    #[test]
    fn keys() {
        let none = KeyModifiers::NONE;
        assert_eq!(
            action(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            action(&key(KeyCode::Char('c'), none)),
            Some(Action::ToggleMode)
        );
        assert_eq!(action(&key(KeyCode::Char('q'), none)), Some(Action::Quit));
        assert_eq!(
            action(&key(KeyCode::Char('2'), none)),
            Some(Action::Sort(SortBy::Total))
        );
        assert_eq!(
            action(&key(KeyCode::Char('o'), none)),
            Some(Action::Sort(SortBy::Own))
        );
        assert_eq!(
            action(&key(KeyCode::Char(' '), none)),
            Some(Action::TogglePause)
        );
        assert_eq!(action(&key(KeyCode::Char('x'), none)), None);
        assert_eq!(
            action(&key(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            None
        );
        let mut release = key(KeyCode::Char('q'), none);
        release.kind = KeyEventKind::Release;
        assert_eq!(action(&release), None);
        let mut m = Model::default();
        assert!(apply(&mut m, Action::Sort(SortBy::Total)));
        assert_eq!(m.sort, SortBy::Total);
        assert!(apply(&mut m, Action::TogglePause));
        assert!(m.paused);
        assert!(apply(&mut m, Action::ToggleInlined));
        assert!(!m.show_inlined);
        assert!(!apply(&mut m, Action::Quit));
    }
}
