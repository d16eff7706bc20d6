//! Progress bars on a tty's stderr (indicatif); silent otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;

use acido_porcelain::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A porcelain progress sink that draws one bar per unit of work on
/// stderr, only when stderr is a terminal and `-q` was not given.
pub struct Bar {
    enabled: bool,
    quiet: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl Bar {
    /// A sink for this run; `quiet` silences bars and notes.
    pub fn new(quiet: bool) -> Self {
        Bar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            quiet,
            current: Mutex::new(None),
        }
    }
}

impl Progress for Bar {
    fn begin(&self, label: &str, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                    .expect("the template is valid"),
            ),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_message(label.to_owned());
        if let Ok(mut current) = self.current.lock() {
            *current = Some(bar);
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(current) = self.current.lock() {
            if let Some(bar) = current.as_ref() {
                bar.inc(bytes);
            }
        }
    }

    fn end(&self) {
        if let Ok(mut current) = self.current.lock() {
            if let Some(bar) = current.take() {
                bar.finish_and_clear();
            }
        }
    }

    fn note(&self, message: &str) {
        if !self.quiet {
            self.end();
            eprintln_quiet(message);
        }
    }
}

fn eprintln_quiet(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "acido: {message}");
}
