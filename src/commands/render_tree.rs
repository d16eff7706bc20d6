//! `acido render-tree [--list [-z]] [--no-verify] IMAGE [DIR]`

use std::path::PathBuf;

use acido_plumbing::image::OpenImage;
use acido_plumbing::naming::{self, ImageRef};
use acido_plumbing::render::{self, DependencyList, ImageSource, RenderOptions};
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido render-tree`.
#[derive(Debug, Args)]
pub struct RenderTreeArgs {
    /// Print which image supplies each path instead of writing a tree
    #[arg(long, conflicts_with = "dir")]
    pub list: bool,
    /// With --list: terminate records with NUL and print paths raw
    // `requires = "list"` would be met by --list's default value; a
    // conflict with DIR (required without --list) says the same.
    #[arg(short = 'z', conflicts_with = "dir")]
    pub nul: bool,
    /// Do not re-hash the stored blobs before publishing the tree
    #[arg(long)]
    pub no_verify: bool,
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci
    /// file (its dependencies come from the store)
    pub image: String,
    /// The directory to create (it must not exist, or be empty)
    #[arg(required_unless_present = "list")]
    pub dir: Option<PathBuf>,
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
