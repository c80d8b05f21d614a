//! `gprof-bpf top` as a user meets it: driven in tmux (keys sent, the screen read back) against
//! the hotloop fixture, whose `cpu` mode spends about 2/3 of its CPU in `main.hotA` and 1/3 in
//! `main.hotB`, both called from `main.cpu` (the oracle: the fixture's own structure, not our
//! code). And the plain text it prints when stdout is not a terminal.
//!
//! Needs root (eBPF), tmux and a Go toolchain; without them each test skips loudly (a failure
//! under GPROF_BPF_STRICT=1).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gprof-bpf");

/// A detached tmux session on a server of its own (never the user's), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A `width`×`height` session running a plain shell with a `$ ` prompt.
    fn start(name: &str, width: u16, height: u16) -> Option<Tmux> {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !gprof_testkit::require(ok, "tmux is not installed (scripts/setup.sh installs it)") {
            return None;
        }
        let t = Tmux {
            socket: format!("gprof-top-{name}-{}", std::process::id()),
        };
        let status = t
            .cmd()
            .args(["new-session", "-d", "-s", "t", "-x", &width.to_string()])
            .args(["-y", &height.to_string()])
            .args([
                "env",
                "PS1=$ ",
                "TERM=xterm-256color",
                "bash",
                "--norc",
                "--noprofile",
            ])
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        // Keep the pane when the shell exits (to read what it printed).
        let _ = t
            .cmd()
            .args(["set-option", "-t", "t", "remain-on-exit", "on"])
            .status();
        Some(t)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn send(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success(), "send-keys {keys:?}");
    }

    /// Types a line into the shell.
    fn type_line(&self, line: &str) {
        self.send(&["-l", line]);
        self.send(&["Enter"]);
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn display(&self, format: &str) -> String {
        let out = self
            .cmd()
            .args(["display-message", "-p", "-t", "t", format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn alternate_on(&self) -> bool {
        self.display("#{alternate_on}") == "1"
    }

    /// Waits up to `timeout` for `cond` on the screen; the screen that satisfied it.
    fn wait_for(&self, timeout: Duration, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the view is gone and the shell is back, with the terminal in cooked mode.
    fn assert_restored(&self, final_line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.alternate_on() {
            assert!(
                Instant::now() < deadline,
                "still on the alternate screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let s = self.wait_for(Duration::from_secs(15), final_line, |s| {
            s.contains(final_line) && s.trim_end().ends_with('$')
        });
        assert_eq!(self.display("#{cursor_flag}"), "1", "cursor hidden");
        // Raw mode is off again: the line discipline echoes and reads lines.
        self.type_line(
            "echo \"STTY:$(stty -a | tr ' ;' '\\n\\n' | grep -x -e '-*icanon' -e '-*echo' | tr '\\n' ' ')\"",
        );
        let flags = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("STTY:") && !l.contains("$("))
                .map(str::to_string)
        };
        let s2 = self.wait_for(Duration::from_secs(5), "stty output", |s| {
            flags(s).is_some()
        });
        let line = flags(&s2).unwrap();
        assert!(
            line.contains("icanon") && !line.contains("-icanon") && !line.contains("-echo"),
            "terminal left raw: {line}"
        );
        s
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// The rows of the view: the lines after the column titles.
fn rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .skip_while(|l| !l.contains("Function (file:line)"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn first_row(screen: &str) -> &str {
    rows(screen).first().copied().unwrap_or("")
}

/// The function a row names (the text after the numeric columns).
fn row_has(row: &str, function: &str) -> bool {
    row.split_whitespace().any(|w| w == function)
}

fn position(screen: &str, function: &str) -> Option<usize> {
    rows(screen).iter().position(|r| row_has(r, function))
}

struct Target {
    child: std::process::Child,
    pid: u32,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Root, a Go toolchain and the hotloop fixture in `cpu` mode for `seconds`.
fn hot_target(seconds: u32) -> Option<Target> {
    if !gprof_testkit::require_root() {
        return None;
    }
    let version = common::newest_go()?;
    let (child, pid) = common::hotloop(&version, "cpu", seconds)?;
    Some(Target { child, pid })
}

#[test]
fn hot_function_first_then_sort_keys_then_quit_restores() {
    let Some(target) = hot_target(120) else {
        return;
    };
    let Some(tmux) = Tmux::start("keys", 120, 40) else {
        return;
    };
    tmux.wait_for(Duration::from_secs(5), "the shell prompt", |s| {
        s.trim_end().ends_with('$')
    });
    let launched = Instant::now();
    tmux.type_line(&format!("{BIN} top --pid {} --interval 1s", target.pid));
    // The view is up once its column titles are drawn; the hot function must lead within 3 s.
    let s = tmux.wait_for(Duration::from_secs(15), "the view", |s| {
        s.contains("Function (file:line)")
    });
    assert!(
        tmux.alternate_on(),
        "the view is not on the alternate screen"
    );
    assert!(s.contains(&format!("pid {}", target.pid)), "{s}");
    let shown = Instant::now();
    let s = tmux.wait_for(Duration::from_secs(3), "main.hotA on the first row", |s| {
        row_has(first_row(s), "main.hotA")
    });
    eprintln!(
        "first frame {:.2}s after the launch, main.hotA first {:.2}s after it",
        (shown - launched).as_secs_f64(),
        shown.elapsed().as_secs_f64()
    );
    assert!(s.contains("*Own%") && s.contains("sort own%"), "{s}");
    assert!(s.contains("go1."), "Go version in the header: {s}");
    // By total: main.cpu (which calls both hot functions) above main.hotA.
    tmux.send(&["2"]);
    let s = tmux.wait_for(Duration::from_secs(3), "sort by total%", |s| {
        s.contains("*Total%") && !s.contains("*Own%") && s.contains("sort total%")
    });
    let (cpu, hot) = (position(&s, "main.cpu"), position(&s, "main.hotA"));
    assert!(
        cpu.is_some() && hot.is_some() && cpu < hot,
        "main.cpu should lead main.hotA by total:\n{s}"
    );
    tmux.send(&["4"]);
    tmux.wait_for(Duration::from_secs(3), "sort by total time", |s| {
        s.contains("*TotalTime")
    });
    tmux.send(&["o"]);
    let s = tmux.wait_for(Duration::from_secs(3), "sort by own% again", |s| {
        s.contains("*Own%") && row_has(first_row(s), "main.hotA")
    });
    assert!(!s.contains("*Total%"), "{s}");
    // Toggles show in the header.
    tmux.send(&["i"]);
    tmux.wait_for(Duration::from_secs(3), "inlined frames off", |s| {
        s.contains("inlined (off)") && s.contains("no inlines")
    });
    tmux.send(&["p"]);
    tmux.wait_for(Duration::from_secs(3), "paused", |s| s.contains("[PAUSED]"));
    tmux.send(&["Space"]);
    tmux.wait_for(Duration::from_secs(3), "resumed", |s| {
        !s.contains("[PAUSED]")
    });
    tmux.send(&["c"]);
    tmux.wait_for(Duration::from_secs(3), "cumulative view", |s| {
        s.contains("view cumulative")
    });
    tmux.send(&["r"]);
    tmux.wait_for(
        Duration::from_secs(5),
        "hotA leads again after a reset",
        |s| row_has(first_row(s), "main.hotA"),
    );
    tmux.send(&["q"]);
    tmux.assert_restored("gprof-bpf top: stopped; pid");
    drop(target);
}

#[test]
fn ctrl_c_and_resizes_restore_the_terminal() {
    let Some(target) = hot_target(120) else {
        return;
    };
    let Some(tmux) = Tmux::start("ctrlc", 50, 12) else {
        return;
    };
    tmux.wait_for(Duration::from_secs(5), "the shell prompt", |s| {
        s.trim_end().ends_with('$')
    });
    tmux.type_line(&format!("{BIN} top --pid {}", target.pid));
    let s = tmux.wait_for(Duration::from_secs(15), "hotA first on a small pane", |s| {
        row_has(first_row(s), "main.hotA")
    });
    for l in s.lines() {
        assert!(l.chars().count() <= 50, "line wider than the pane: {l:?}");
    }
    for (w, h) in [(30u16, 6u16), (200, 50), (12, 4), (80, 24)] {
        let status = tmux
            .cmd()
            .args([
                "resize-window",
                "-t",
                "t",
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(500));
        let s = tmux.screen();
        assert!(tmux.alternate_on(), "the view died at {w}x{h}:\n{s}");
        for l in s.lines() {
            assert!(l.chars().count() <= w as usize, "{w}x{h}: {l:?}");
        }
    }
    tmux.wait_for(Duration::from_secs(3), "hotA first at 80x24", |s| {
        row_has(first_row(s), "main.hotA")
    });
    tmux.send(&["C-c"]);
    tmux.assert_restored("gprof-bpf top: stopped; pid");
    drop(target);
}

#[test]
fn target_exit_restores_the_terminal_with_a_final_line() {
    let Some(target) = hot_target(4) else {
        return;
    };
    let Some(tmux) = Tmux::start("exit", 100, 30) else {
        return;
    };
    tmux.wait_for(Duration::from_secs(5), "the shell prompt", |s| {
        s.trim_end().ends_with('$')
    });
    tmux.type_line(&format!("{BIN} top --pid {}", target.pid));
    tmux.wait_for(Duration::from_secs(15), "the view", |s| {
        s.contains("Function (file:line)")
    });
    let s = tmux.assert_restored(&format!("gprof-bpf top: pid {} exited", target.pid));
    assert!(s.contains("samples in"), "{s}");
    drop(target);
}

#[test]
fn a_panic_restores_the_terminal() {
    let Some(target) = hot_target(120) else {
        return;
    };
    let Some(tmux) = Tmux::start("panic", 100, 30) else {
        return;
    };
    tmux.wait_for(Duration::from_secs(5), "the shell prompt", |s| {
        s.trim_end().ends_with('$')
    });
    tmux.type_line(&format!(
        "GPROF_BPF_TOP_TEST_PANIC=1 {BIN} top --pid {}; echo EXIT=$?",
        target.pid
    ));
    let s = tmux.assert_restored("EXIT=101");
    assert!(s.contains("GPROF_BPF_TOP_TEST_PANIC is set"), "{s}");
    drop(target);
}

#[test]
fn plain_blocks_when_stdout_is_not_a_terminal() {
    let Some(target) = hot_target(5) else {
        return;
    };
    let out = Command::new(BIN)
        .args(["top", "--pid", &target.pid.to_string(), "--interval", "1s"])
        .args(["--by-tag", "pid"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(!stdout.contains('\x1b'), "escape sequences in plain output");
    let blocks: Vec<&str> = stdout
        .split("\n\n")
        .filter(|b| b.starts_with("gprof-bpf top  pid"))
        .collect();
    assert!(
        blocks.len() >= 3,
        "expected a block per second over 5 s:\n{stdout}"
    );
    // Every block: header, column titles with the tag column, rows.
    for b in &blocks {
        assert!(b.contains("Function (file:line)"), "{b}");
        assert!(b.lines().nth(2).is_some_and(|l| l.contains(" pid ")), "{b}");
    }
    let busy = blocks
        .iter()
        .filter(|b| rows(b).first().is_some_and(|r| row_has(r, "main.hotA")))
        .count();
    assert!(
        busy >= blocks.len() - 1,
        "main.hotA should lead (nearly) every block:\n{stdout}"
    );
    let first = rows(blocks[blocks.len() / 2])[0];
    assert!(
        row_has(first, &target.pid.to_string()),
        "the tag column holds the pid: {first}"
    );
    let last = stdout.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!("gprof-bpf top: pid {} exited", target.pid)),
        "final line: {last}"
    );
}

#[test]
fn bad_input_is_one_line_errors() {
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    for (args, code) in [
        (&["top"][..], 2),
        (&["top", "--pid", "x"][..], 2),
        (&["top", "--pid", "1", "--interval", "0"][..], 2),
        (&["top", "--pid", "1", "-F", "0"][..], 2),
        (&["top", "--pid", "4000000000"][..], 1),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("gprof-bpf: error:"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// `--subprocesses`: `top --pid SHELL` follows the Go program the shell starts a second later
/// (a child, not the shell itself), and its hot function leads once it runs.
#[test]
fn subprocesses_follows_a_child_the_target_starts() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(version) = common::newest_go() else {
        return;
    };
    let Some(bin) = common::hotloop_bin(&version) else {
        return;
    };
    // `; true`: the shell forks the program instead of exec'ing into it.
    let script = format!("sleep 1; '{}' cpu 4 >/dev/null; true", bin.display());
    let shell = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let mut shell = Target {
        pid: shell.id(),
        child: shell,
    };
    let out = Command::new(BIN)
        .args(["top", "--pid", &shell.pid.to_string(), "--subprocesses"])
        .args(["--interval", "1s", "--by-tag", "pid"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = shell.child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let blocks: Vec<&str> = stdout
        .split("\n\n")
        .filter(|b| b.starts_with("gprof-bpf top  pid"))
        .collect();
    let led: Vec<&str> = blocks
        .iter()
        .filter_map(|b| rows(b).first().copied())
        .filter(|r| row_has(r, "main.hotA"))
        .collect();
    assert!(
        led.len() >= 2,
        "main.hotA of the child should lead blocks once it runs:\n{stdout}"
    );
    // Its samples carry the child's pid, not the shell's.
    assert!(
        led.iter().all(|r| !row_has(r, &shell.pid.to_string())),
        "the hot rows are the shell's own:\n{stdout}"
    );
}
