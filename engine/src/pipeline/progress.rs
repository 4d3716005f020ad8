//! How a run shows itself while it goes: a line per running task on a terminal, plain start and
//! end lines in CI or a pipe, or nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xshell::Shell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// indicatif lines (a terminal, CI unset).
    Bars,
    /// One plain line per start and end.
    Plain,
    Quiet,
}

impl ProgressMode {
    pub(crate) fn detect(sh: &Shell) -> ProgressMode {
        use std::io::IsTerminal;
        if sh.var("CI").is_ok_and(|v| !v.is_empty() && v != "false") || !std::io::stderr().is_terminal() {
            ProgressMode::Plain
        } else {
            ProgressMode::Bars
        }
    }
}

pub(super) struct Progress {
    mode: ProgressMode,
    start: Instant,
    multi: Option<indicatif::MultiProgress>,
    bars: std::sync::Mutex<BTreeMap<usize, indicatif::ProgressBar>>,
}

impl Progress {
    pub(super) fn new(mode: ProgressMode) -> Progress {
        let multi = (mode == ProgressMode::Bars).then(indicatif::MultiProgress::new);
        Progress { mode, start: Instant::now(), multi, bars: Default::default() }
    }

    pub(super) fn started(&self, i: usize, id: &str) {
        match (&self.multi, self.mode) {
            (Some(multi), _) => {
                let bar = multi.add(indicatif::ProgressBar::new_spinner());
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("  {spinner} {msg:<28} {elapsed:>4}")
                {
                    bar.set_style(style);
                }
                bar.set_message(id.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(i, bar);
                }
            }
            (None, ProgressMode::Plain) => {
                eprintln!("[{:>7.1}s] start  {id}", self.start.elapsed().as_secs_f64())
            }
            _ => {}
        }
    }

    pub(super) fn finished(&self, i: usize, id: &str, took: f64, verdict: &str) {
        let line = format!("[{:>7.1}s] {verdict:<6} {id} ({took:.1}s)", self.start.elapsed().as_secs_f64());
        match (&self.multi, self.mode) {
            (Some(multi), _) => {
                if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&i)) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(line);
            }
            (None, ProgressMode::Plain) => eprintln!("{line}"),
            _ => {}
        }
    }

    pub(super) fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}
