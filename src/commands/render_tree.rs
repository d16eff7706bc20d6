//! `acido render-tree [--list [-z]] [--no-verify] IMAGE [DIR]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use acido_plumbing::image::OpenImage;
use acido_plumbing::naming::{self, ImageRef};
use acido_plumbing::render::{self, DependencyList, ImageSource, RenderOptions};
use nix::sys::signal::{SigSet, Signal};

use crate::cli::RenderTreeArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// An interrupt flag raised by SIGINT, SIGTERM or SIGHUP. The signals are
/// blocked in this thread (and so in every thread started after) and taken
/// by a waiting thread, so a render stops cleanly and removes its temp dir.
pub fn interrupt_on_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    if set.thread_block().is_ok() {
        let raised = Arc::clone(&flag);
        std::thread::spawn(move || {
            if set.wait().is_ok() {
                raised.store(true, Ordering::SeqCst);
            }
        });
    }
    flag
}

/// The dependency list of IMAGE: a stored image, or an `.aci` file whose
/// dependencies come from the store.
pub fn dependency_list(ctx: &Context, image: &str) -> anyhow::Result<DependencyList> {
    let store = ctx.store()?;
    Ok(match ImageRef::parse(image, true)? {
        ImageRef::File(path) => {
            let opened = OpenImage::open_archive(&path, &std::env::temp_dir(), store.limits())?;
            render::dependency_list_for(&store, opened, ImageSource::Archive)?
        }
        name => render::dependency_list(&store, naming::resolve(&store, &name)?.id)?,
    })
}

/// Renders IMAGE into DIR, printing nothing, or prints the file map.
pub fn run(ctx: &Context, args: RenderTreeArgs) -> anyhow::Result<Outcome> {
    let list = dependency_list(ctx, &args.image)?;
    let map = render::file_map(&list)?;
    match args.dir {
        Some(dir) if !args.list => {
            let interrupt = interrupt_on_signals();
            let opts = RenderOptions {
                verify: !args.no_verify,
                progress: None,
            };
            render::render_list(&list, &map, &dir, &opts, &interrupt)?;
        }
        _ => {
            let mut out = output::stdout();
            render::write_file_map(&mut out, &list, &map, args.nul)?;
            output::finish(out)?;
        }
    }
    Ok(Outcome::Success)
}
