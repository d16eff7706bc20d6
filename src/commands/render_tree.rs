//! `acido render-tree [--list [-z]] [--no-verify] IMAGE [DIR]`

use acido_plumbing::image::OpenImage;
use acido_plumbing::naming::{self, ImageRef};
use acido_plumbing::render::{self, DependencyList, ImageSource, RenderOptions};

use crate::cli::RenderTreeArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

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
            let interrupt = crate::interrupt::flag();
            let opts = RenderOptions {
                verify: !args.no_verify,
                progress: None,
                hook: acido_porcelain::test_hooks::render_pause_hook(),
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
