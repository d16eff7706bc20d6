//! Running the steps of an Acidofile, with the step cache ([`super::cache`]).
//!
//! While every step so far was found in the cache, nothing is rendered:
//! `FROM` only resolves its image and the manifest edits are replayed
//! (they are cheap and fully decided by the keys before them). At the
//! first step that must run, the tree is rendered from the last cached
//! image (or the `FROM` image) and from then on every step runs and
//! stores its result as a new entry.
//!
//! Where overlays can be mounted (root, overlayfs) the tree is an overlay
//! build tree (DESIGN §13) over the tree cache's rendering of the image it
//! starts from, so starting costs nothing when that rendering is cached.
//! After each step is stored, its upper directory becomes the entry's
//! step layer (`overlay::stack_layer`): the overlay is mounted again with
//! the layer on top of its lower stack and a fresh upper directory, so the
//! next step's image is just the new upper directory read against the
//! entry, and the final image the layers and the upper directory read
//! together against the `FROM` image (see `build::build_since`). A build
//! starting from a cached step whose chain has every layer mounts them
//! over the `FROM` image's cached rendering and renders nothing. When one
//! more layer would not fit in the mount's options, the steps stack in the
//! one upper directory instead, with a stat snapshot of it taken after
//! each step, and the next step's image reads only the upper paths that
//! changed since. The images are the same bytes as on a plain tree.
//! Elsewhere, or if the mount fails, the tree is a plain one, with no
//! message: an overlay only makes it faster. A kept tree (`--keep-tree`)
//! is always plain, so it needs no `endbuild`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use acido_plumbing::build::overlay::LayerWalks;
use acido_plumbing::build::{mount, Snapshot};
use acido_plumbing::compression::Compression;
use acido_plumbing::diff::{self, FileMeta, Tree};
use acido_plumbing::entry::{EntryKind, Timestamp};
use acido_plumbing::id::ImageId;
use acido_plumbing::limits::LimitKind;
use acido_plumbing::manifest::ImageManifest;
use acido_plumbing::naming::{self, ImageRef};
use acido_plumbing::pack::PackOptions;
use acido_plumbing::store::{ImageRecord, Layer, StateLayer, Store};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use serde_json::{json, Map, Value};

use super::cache::{self, Entries, Key};
use super::parse::{Base, CopyStep, Instruction, Step};
use super::{checked, shorten, upsert, AcidofileError, AcidofileOptions, StepError, AC_VERSION};
use crate::build::{self, BuildOptions, TreeKnowledge};
use crate::copy::{self, CopyOptions};
use crate::overlay::{self, OverlayError};
use crate::progress::{NoProgress, Progress};
use crate::run::{self, RunOptions};
use crate::startbuild::{self, StartBuildError};

/// The modification time `COPY`, `ADD` and `WORKDIR` give what they
/// create from the host or make anew: 1980-01-01T00:00:00Z, the earliest
/// time a zip file can hold, so tools that archive copied files keep
/// working. A fixed time keeps the result independent of when the sources
/// were touched, which the cache key ignores.
pub const COPY_MTIME: i64 = 315_532_800;

/// How one step was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Its result came from the step cache.
    Cached,
    /// It ran, taking this long. `FROM` renders its image only when the
    /// next step is not cached, else the first step that runs renders the
    /// state it starts from, in its own time. Manifest edits always run
    /// (they take no time).
    Ran(Duration),
}

/// Where the build stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Every step so far was cached; the tree is not rendered yet.
    Deferred,
    /// The tree holds the state after the last step.
    Live,
}

pub(super) struct Builder<'a> {
    pub(super) store: &'a Store,
    pub(super) file: &'a Path,
    pub(super) opts: &'a AcidofileOptions,
    pub(super) context: PathBuf,
    pub(super) tree: PathBuf,
    pub(super) work: PathBuf,
    pub(super) temp_parent: &'a Path,
    pub(super) progress: Arc<dyn Progress>,
    pub(super) interrupt: &'a AtomicBool,
    /// The manifest as edited so far (set by `FROM`).
    pub(super) manifest: Option<ImageManifest>,
    pub(super) base: Option<ImageId>,
    pub(super) total: usize,
    /// The cache entries found in the store when the build started.
    pub(super) entries: Entries,
    /// The key of the last step; `None` once a key could not be made (a
    /// source that cannot be read), which ends caching for the build.
    pub(super) key: Option<Key>,
    pub(super) phase: Phase,
    /// The image holding the state after the last step that changed the
    /// tree (name and id): the `FROM` image, a cache entry, or nothing
    /// for `FROM scratch` before any step.
    pub(super) top: Option<(String, ImageId)>,
    /// Whether `top` is a cache entry (not the `FROM` image).
    pub(super) top_is_entry: bool,
    /// The stat snapshot `startbuild` took of the `FROM` image's render,
    /// when the tree was rendered from it (restored for the final build).
    pub(super) from_snapshot: Option<Vec<u8>>,
    pub(super) outcomes: Vec<StepOutcome>,
    /// Whether the current step's first line was printed before it ran.
    pub(super) announced: bool,
    /// Whether the tree may be an overlay build tree (not for a kept tree,
    /// nor when a test forces plain trees).
    pub(super) allow_overlay: bool,
    /// Whether the tree is a mounted overlay build tree of this build,
    /// which `build_file` ends before removing the work directory.
    pub(super) on_overlay: bool,
    /// On an overlay tree that could not stack one more layer, the stat
    /// snapshot of its upper directory taken when the last step's image
    /// was stored (the tree was that image's rendering then); `None`
    /// while the tree is its lower stack's rendering plus the upper
    /// directory.
    pub(super) upper_since: Option<Snapshot>,
    /// The walks of the step layers stacked in the tree, from their seal
    /// checks and seals, for the final build (which reads the layers).
    pub(super) layer_walks: LayerWalks,
    /// The store's records as the build started, when it uses the cache
    /// (see `build_file`).
    pub(super) records: Option<Vec<ImageRecord>>,
}

/// The instruction in a form that depends only on what it does: keyword
/// and parsed arguments (spacing, quoting, case and comments do not
/// matter; Acidofiles have no variables to expand).
fn canonical(step: &Step) -> Value {
    let args = match step {
        Step::From(Base::Image(image)) => json!([image]),
        Step::From(Base::Scratch) => json!(["scratch"]),
        Step::Name(name) => json!([name]),
        Step::Label(pairs) | Step::Annotation(pairs) | Step::Env(pairs) => json!(pairs),
        Step::Copy(c) | Step::Add(c) => json!({
            "chown": c.chown,
            "chmod": c.chmod,
            "sources": c.sources,
            "dest": c.dest,
        }),
        Step::Run(argv) | Step::Exec(argv) => json!(argv),
        Step::Workdir(path) => json!([path]),
        Step::User { user, group } => json!([user, group]),
        Step::Isolator { name, value } => json!([name, value]),
        Step::Port(p) => json!([p.name, p.protocol, p.port, p.count, p.socket_activated]),
        Step::Mount {
            name,
            path,
            read_only,
        } => json!([name, path, read_only]),
    };
    json!([step.keyword(), args])
}

fn changes_tree(step: &Step) -> bool {
    matches!(
        step,
        Step::Copy(_) | Step::Add(_) | Step::Run(_) | Step::Workdir(_)
    )
}

impl Builder<'_> {
    fn step_error(
        &self,
        instruction: &Instruction,
        step: usize,
        source: StepError,
    ) -> AcidofileError {
        AcidofileError::Step {
            file: self.file.to_owned(),
            line: instruction.line,
            step,
            text: shorten(&instruction.text),
            source: Box::new(source),
        }
    }

    /// Prints the step's first line before it runs (its output follows).
    fn announce(&mut self, step: usize, instruction: &Instruction) {
        self.progress.note(&format!(
            "step {step}/{}: {}",
            self.total,
            shorten(&instruction.text)
        ));
        self.announced = true;
    }

    /// Whether step `step` (1-based) may be taken from the cache.
    fn may_use_cache(&self, step: usize) -> bool {
        self.opts.use_cache && self.opts.rebuild_from.is_none_or(|from| step < from)
    }

    fn report(&mut self, step: usize, instruction: &Instruction, outcome: StepOutcome) {
        let total = self.total;
        let text = shorten(&instruction.text);
        let line = match (outcome, self.announced) {
            (StepOutcome::Cached, _) => format!("step {step}/{total}: {text}: cached"),
            (StepOutcome::Ran(time), true) => {
                format!("step {step}/{total}: done in {:.2}s", time.as_secs_f64())
            }
            (StepOutcome::Ran(time), false) => {
                format!("step {step}/{total}: {text}: {:.2}s", time.as_secs_f64())
            }
        };
        self.progress.note(&line);
        self.outcomes.push(outcome);
    }

    pub(super) fn run_all(&mut self, instructions: &[Instruction]) -> Result<(), AcidofileError> {
        for (index, instruction) in instructions.iter().enumerate() {
            let step = index + 1;
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(self.step_error(instruction, step, StepError::Interrupted));
            }
            self.announced = false;
            let outcome = self
                .do_step(instructions, instruction, step)
                .map_err(|source| self.step_error(instruction, step, source))?;
            self.report(step, instruction, outcome);
        }
        Ok(())
    }

    fn do_step(
        &mut self,
        all: &[Instruction],
        instruction: &Instruction,
        step: usize,
    ) -> Result<StepOutcome, StepError> {
        if let Step::From(base) = &instruction.step {
            return self.from(all, base, instruction, step);
        }
        let key = self.next_key(&instruction.step);
        if !changes_tree(&instruction.step) {
            let started = Instant::now();
            self.key = key;
            self.run_step(instruction)?;
            return Ok(StepOutcome::Ran(started.elapsed()));
        }
        if self.phase == Phase::Deferred && self.may_use_cache(step) {
            if let Some(id) = key.and_then(|k| self.entries.get(&k)) {
                // The manifest side of WORKDIR still applies.
                if let Step::Workdir(path) = &instruction.step {
                    let dir = self.resolve_workdir(path)?;
                    self.set_workdir(&dir)?;
                }
                self.key = key;
                self.top = Some((cache::ENTRY_NAME.to_owned(), id));
                self.top_is_entry = true;
                return Ok(StepOutcome::Cached);
            }
        }
        self.announce(step, instruction);
        let started = Instant::now();
        self.key = key;
        self.materialize()?;
        self.run_step(instruction)?;
        if let Some(key) = self.key {
            self.store_entry(&key, &instruction.text)?;
        }
        Ok(StepOutcome::Ran(started.elapsed()))
    }

    /// The key of `step` after the last one; `None` when there is no last
    /// key or the step's sources cannot be read (the step then reports
    /// that itself).
    fn next_key(&self, step: &Step) -> Option<Key> {
        let prev = self.key?;
        let text = canonical(step).to_string();
        match step {
            Step::Copy(c) | Step::Add(c) => {
                let dest = self.copy_dest(c);
                let paths: Vec<PathBuf> = c.sources.iter().map(|s| self.context.join(s)).collect();
                let named: Vec<(&str, &Path)> = c
                    .sources
                    .iter()
                    .map(String::as_str)
                    .zip(paths.iter().map(PathBuf::as_path))
                    .collect();
                let digest = cache::digest_sources(&named).ok()?;
                Some(prev.next(&[
                    ("step", text.as_bytes()),
                    ("dest", dest.as_bytes()),
                    ("sources", &digest),
                ]))
            }
            Step::Run(_) => {
                let app = self.manifest.as_ref().and_then(|m| m.app.as_ref());
                let env: Vec<(String, String)> = app
                    .map(|a| {
                        a.environment
                            .iter()
                            .map(|v| (v.name.to_string(), v.value.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let user = app.map(|a| format!("{}:{}", a.user, a.group));
                Some(prev.next(&[
                    ("step", text.as_bytes()),
                    ("env", json!(env).to_string().as_bytes()),
                    ("user", user.unwrap_or_default().as_bytes()),
                    ("workdir", self.workdir().as_bytes()),
                ]))
            }
            Step::Workdir(path) => {
                let dir = self.resolve_workdir(path).ok()?;
                Some(prev.next(&[("step", text.as_bytes()), ("dir", dir.as_bytes())]))
            }
            _ => Some(prev.next(&[("step", text.as_bytes())])),
        }
    }

    /// Renders the state the next step starts from into the tree, unless
    /// it is there already.
    fn materialize(&mut self) -> Result<(), StepError> {
        if self.phase == Phase::Live {
            return Ok(());
        }
        self.phase = Phase::Live;
        match self.top.clone() {
            Some((_, id)) => {
                let image = id.to_string();
                if self.start_overlay(&id)? {
                    return Ok(());
                }
                if self.top_is_entry {
                    self.progress
                        .note(&format!("rendering the cached state {}", id.abbrev(12)));
                }
                startbuild::startbuild(
                    self.store,
                    &image,
                    Some(&self.tree),
                    self.temp_parent,
                    Arc::clone(&self.progress),
                    self.interrupt,
                )?;
                // A snapshot of the FROM image's render lets the final
                // build skip untouched files; one of a cache entry's
                // render says nothing about the FROM image.
                self.from_snapshot = if self.top_is_entry {
                    None
                } else {
                    self.store.load_build_state(&self.tree).ok().flatten()
                };
                Ok(())
            }
            None => {
                let rootfs = self.tree.join("rootfs");
                let io_err = |path: &Path| {
                    let path = path.to_owned();
                    move |source| StepError::Io { path, source }
                };
                fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
                fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(&rootfs))?;
                // A fixed time, as COPY gives: the image of the same steps
                // is the same whenever it is built.
                let time = TimeSpec::new(COPY_MTIME, 0);
                utimensat(None, &rootfs, &time, &time, UtimensatFlags::NoFollowSymlink).map_err(
                    |errno| StepError::Io {
                        path: rootfs.clone(),
                        source: errno.into(),
                    },
                )?;
                Ok(())
            }
        }
    }

    /// Makes the tree an overlay build tree on the tree cache's rendering
    /// of `id`, when overlays can be mounted here; `false` (and nothing
    /// made) when not, so the caller renders a plain tree instead.
    fn start_overlay(&mut self, id: &ImageId) -> Result<bool, StepError> {
        if !self.allow_overlay || mount::check_support().is_err() {
            return Ok(false);
        }
        if self.top_is_entry && self.start_stack(id)? {
            return Ok(true);
        }
        if self.top_is_entry {
            self.progress
                .note(&format!("starting from the cached state {}", id.abbrev(12)));
        }
        let started = overlay::startbuild_steps(
            self.store,
            &id.to_string(),
            &self.tree,
            self.temp_parent,
            Arc::clone(&self.progress),
            self.interrupt,
        );
        self.adopt_overlay(started)
    }

    /// Takes the result of starting an overlay build tree: `true` once the
    /// tree is one, `false` when the kernel refused the mount (a store on
    /// a file system overlayfs cannot use as upper, options or a layer
    /// count it lacks): the start undid itself, and the caller renders.
    fn adopt_overlay(
        &mut self,
        started: Result<overlay::OverlayReport, OverlayError>,
    ) -> Result<bool, StepError> {
        match started {
            Ok(_) => {
                self.on_overlay = true;
                self.upper_since = None;
                // The build reads the upper directory, not a snapshot.
                self.from_snapshot = None;
                Ok(true)
            }
            Err(OverlayError::Mount(_)) => Ok(false),
            Err(e) => Err(StepError::Overlay(e)),
        }
    }

    /// Makes the tree an overlay build tree on the stack of the cached
    /// entry `id`'s chain: the layers of its entries over the `FROM`
    /// image's cached render (rendered first when the tree cache lost
    /// it), so none of the cached steps is rendered. `false` (nothing
    /// made) when an entry of the chain has no layer (it was built on a
    /// plain tree, or its layer was removed), when the build is `FROM
    /// scratch`, or when the stack cannot be mounted; the caller renders
    /// the entry then.
    fn start_stack(&mut self, id: &ImageId) -> Result<bool, StepError> {
        let Some(base) = self.base else {
            return Ok(false);
        };
        let Ok(list) = acido_plumbing::render::dependency_list(self.store, *id) else {
            return Ok(false);
        };
        let Some(at) = list.images.iter().position(|l| l.id == base) else {
            return Ok(false);
        };
        let ids: Vec<ImageId> = list.images[..at].iter().map(|l| l.id).collect();
        let mut layers = Vec::with_capacity(at);
        for (id, found) in ids.iter().zip(intact_layers(self.store, &ids)) {
            // A missing or changed layer: the entry is rendered instead.
            let Some((layer, walk)) = found? else {
                return Ok(false);
            };
            self.layer_walks.insert(layer.upper(), walk);
            layers.push(StateLayer {
                id: id.to_string(),
                upper: layer.upper(),
            });
        }
        let count = layers.len();
        let started = overlay::startbuild_stack(
            self.store,
            &base,
            layers,
            &self.tree,
            self.temp_parent,
            Arc::clone(&self.progress),
            self.interrupt,
        );
        let mounted = self.adopt_overlay(started)?;
        if mounted {
            self.progress.note(&format!(
                "starting from the cached state {}: {count} step layers mounted",
                id.abbrev(12)
            ));
        }
        Ok(mounted)
    }

    /// Stores the tree as the cache entry for `key`: its diff against
    /// `top`, which it then replaces.
    fn store_entry(&mut self, key: &Key, text: &str) -> Result<(), StepError> {
        let dependency = self.top.as_ref().map(|(name, id)| (name.as_str(), id));
        let manifest = cache::entry_manifest(AC_VERSION, key, text, dependency);
        let path = self.tree.join("manifest");
        let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| StepError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        bytes.push(b'\n');
        fs::write(&path, bytes).map_err(|source| StepError::Io { path, source })?;
        let opts = BuildOptions {
            output: None,
            overwrite: false,
            import: true,
            // The store keeps tars uncompressed: compressing would be waste.
            pack: PackOptions {
                compression: Compression::None,
                ..self.opts.build.pack.clone()
            },
        };
        let since = self.upper_since.as_ref().filter(|_| self.on_overlay);
        let built = build::build_with(
            self.store,
            &self.tree,
            &opts,
            &self.work,
            &NoProgress,
            TreeKnowledge {
                since,
                layer_walks: None,
                cache_entry: true,
                records: None,
            },
        );
        let report = match built {
            Ok(report) => report,
            // A chain of entries deeper than a render may follow: the
            // steps from here on run without the cache.
            Err(e) if acido_plumbing::limit_kind(&e) == Some(LimitKind::DependencyDepth) => {
                self.progress.note(
                    "the step cache's chain is as deep as --limit dependency-depth allows: \
                     later steps are not cached",
                );
                self.key = None;
                return Ok(());
            }
            Err(e) => return Err(StepError::Cache(e)),
        };
        let id = report.imported.map_or(report.pack.id, |r| r.id);
        self.top = Some((cache::ENTRY_NAME.to_owned(), id));
        self.top_is_entry = true;
        // The tree is now that entry's rendering: the next entry's build
        // skips what the next step leaves untouched. On an overlay the
        // upper directory becomes the entry's layer (a later build starts
        // from it by mounting it); when one more layer does not fit in
        // the mount, a snapshot of the upper directory does the job.
        if self.on_overlay && self.upper_since.is_none() {
            if let Some((layer, walk)) = overlay::stack_layer(self.store, &self.tree, &id)? {
                if let Some(walk) = walk {
                    self.layer_walks.insert(layer.upper(), walk);
                }
                return Ok(());
            }
        }
        if self.on_overlay {
            let upper = self
                .store
                .overlay_dirs(&self.tree)
                .map_err(|e| StepError::Cache(e.into()))?
                .upper;
            let walked = diff::walk(&upper).map_err(|e| StepError::Io {
                path: upper.clone(),
                source: io::Error::other(e.to_string()),
            })?;
            self.upper_since = Some(Snapshot::of(&walked));
            return Ok(());
        }
        let walked = diff::walk(&self.tree.join("rootfs")).map_err(|e| StepError::Io {
            path: self.tree.join("rootfs"),
            source: io::Error::other(e.to_string()),
        })?;
        self.store
            .save_build_state(&self.tree, &Snapshot::of(&walked).encode())
            .map_err(|e| StepError::Cache(e.into()))?;
        Ok(())
    }

    fn run_step(&mut self, instruction: &Instruction) -> Result<(), StepError> {
        match &instruction.step {
            // Handled by `from`.
            Step::From(_) => Ok(()),
            Step::Name(name) => self.edit(|m| {
                m.insert("name".into(), json!(name));
            }),
            Step::Label(pairs) => self.edit(|m| {
                for (name, value) in pairs {
                    upsert(m, "labels", name, json!({"name": name, "value": value}));
                }
            }),
            Step::Annotation(pairs) => self.edit(|m| {
                for (name, value) in pairs {
                    upsert(
                        m,
                        "annotations",
                        name,
                        json!({"name": name, "value": value}),
                    );
                }
            }),
            Step::Env(pairs) => self.edit_app(|app| {
                for (name, value) in pairs {
                    upsert(
                        app,
                        "environment",
                        name,
                        json!({"name": name, "value": value}),
                    );
                }
            }),
            Step::Workdir(path) => {
                let dir = self.resolve_workdir(path)?;
                let rootfs = self.tree.join("rootfs");
                let before = watch(&rootfs, &dir)?;
                let started = SystemTime::now();
                copy::make_dir(&self.tree, dir.as_bytes())?;
                settle_times(&before, &watch(&rootfs, &dir)?, started)?;
                self.set_workdir(&dir)
            }
            Step::User { user, group } => self.edit_app(|app| {
                app.insert("user".into(), json!(user));
                app.insert("group".into(), json!(group));
            }),
            Step::Exec(argv) => self.edit_app(|app| {
                app.insert("exec".into(), json!(argv));
            }),
            Step::Isolator { name, value } => self.edit_app(|app| {
                upsert(
                    app,
                    "isolators",
                    name,
                    json!({"name": name, "value": value}),
                );
            }),
            Step::Port(port) => self.edit_app(|app| {
                upsert(
                    app,
                    "ports",
                    &port.name,
                    json!({
                        "name": port.name,
                        "protocol": port.protocol,
                        "port": port.port,
                        "count": port.count,
                        "socketActivated": port.socket_activated,
                    }),
                );
            }),
            Step::Mount {
                name,
                path,
                read_only,
            } => self.edit_app(|app| {
                upsert(
                    app,
                    "mountPoints",
                    name,
                    json!({"name": name, "path": path, "readOnly": read_only}),
                );
            }),
            Step::Copy(step) => self.copy(step, false),
            Step::Add(step) => self.copy(step, true),
            Step::Run(argv) => self.run(argv),
        }
    }

    /// `FROM`: the starting manifest, and the tree when nothing after
    /// `FROM` may come from the cache.
    fn from(
        &mut self,
        all: &[Instruction],
        base: &Base,
        instruction: &Instruction,
        step: usize,
    ) -> Result<StepOutcome, StepError> {
        let started = Instant::now();
        match base {
            Base::Image(image) => {
                let resolved = if crate::pull::is_transport_reference(image) {
                    // `FROM docker://…`, `FROM oci:…`: pulled unless stored.
                    let id = crate::pull::stored_or_pull(
                        self.store,
                        image,
                        &self.opts.pull,
                        self.opts.pull_policy,
                        Arc::clone(&self.progress),
                        self.interrupt,
                    )?;
                    naming::Resolved { id, matches: 1 }
                } else {
                    let image = ImageRef::parse(image, false)?;
                    match &self.records {
                        Some(records) => naming::resolve_among(self.store, records, &image)?,
                        None => naming::resolve(self.store, &image)?,
                    }
                };
                if resolved.matches > 1 {
                    self.progress.note(&format!(
                        "{image}: {} images match, using the most recently imported {}",
                        resolved.matches, resolved.id
                    ));
                }
                let opened = self
                    .store
                    .open(&resolved.id)
                    .map_err(StartBuildError::from)?;
                let base_manifest = ImageManifest::from_slice(opened.manifest_bytes())
                    .map_err(|source| StepError::Manifest { source })?;
                self.manifest = Some(startbuild::manifest_on_top_of(&base_manifest, resolved.id));
                self.base = Some(resolved.id);
                self.key = Some(Key::from_image(&resolved.id));
                self.top = Some((base_manifest.name.to_string(), resolved.id));
            }
            Base::Scratch => {
                // The name is needed from the start (every manifest has
                // one): the file's last NAME, which its own step sets again.
                let name = all.iter().rev().find_map(|i| match &i.step {
                    Step::Name(name) => Some(name.clone()),
                    _ => None,
                });
                // `build_file` checked that there is one.
                let name = name.unwrap_or_default();
                let start = json!({
                    "acKind": "ImageManifest",
                    "acVersion": AC_VERSION,
                    "name": name,
                });
                self.manifest = Some(checked(&start)?);
                self.key = Some(Key::from_scratch());
                self.top = None;
            }
        }
        self.top_is_entry = false;
        if self.may_use_cache(step + 1) {
            // Rendering waits for the first step that is not cached.
            return Ok(StepOutcome::Ran(started.elapsed()));
        }
        self.announce(step, instruction);
        self.materialize()?;
        Ok(StepOutcome::Ran(started.elapsed()))
    }

    fn manifest_value(&self) -> Result<Value, StepError> {
        let manifest = self.manifest.as_ref().ok_or(StepError::Interrupted)?;
        serde_json::from_str(&manifest.to_json()).map_err(|e| StepError::Io {
            path: self.tree.join("manifest"),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })
    }

    /// Applies `change` to the manifest's top-level object and checks the
    /// result.
    fn edit(&mut self, change: impl FnOnce(&mut Map<String, Value>)) -> Result<(), StepError> {
        let mut value = self.manifest_value()?;
        if let Value::Object(map) = &mut value {
            change(map);
        }
        self.manifest = Some(checked(&value)?);
        Ok(())
    }

    /// Applies `change` to the app object, made (running as 0:0, which
    /// appc requires to be named) when the manifest has none.
    fn edit_app(&mut self, change: impl FnOnce(&mut Map<String, Value>)) -> Result<(), StepError> {
        self.edit(|m| {
            let app = m
                .entry("app")
                .or_insert_with(|| json!({"user": "0", "group": "0"}));
            if !app.is_object() {
                *app = json!({"user": "0", "group": "0"});
            }
            if let Value::Object(app) = app {
                change(app);
            }
        })
    }

    fn set_workdir(&mut self, dir: &str) -> Result<(), StepError> {
        self.edit_app(|app| {
            app.insert("workingDirectory".into(), json!(dir));
        })
    }

    fn workdir(&self) -> String {
        self.manifest
            .as_ref()
            .and_then(|m| m.app.as_ref())
            .map(|app| app.working_directory.clone())
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| "/".to_owned())
    }

    /// A `WORKDIR` argument made absolute: a relative one is taken from
    /// the current working directory, as Dockerfile does.
    fn resolve_workdir(&self, path: &str) -> Result<String, StepError> {
        if path.starts_with('/') {
            return Ok(path.to_owned());
        }
        let current = self.workdir();
        if !current.starts_with('/') {
            return Err(StepError::RelativeWorkdir {
                path: path.to_owned(),
            });
        }
        Ok(format!("{}/{path}", current.trim_end_matches('/')))
    }

    /// A `COPY`/`ADD` destination in the rootfs: a relative one is taken
    /// from the working directory, as Dockerfile does; a trailing `/` is
    /// kept (it means "into").
    fn copy_dest(&self, step: &CopyStep) -> String {
        if step.dest.starts_with('/') {
            step.dest.clone()
        } else {
            format!("{}/{}", self.workdir().trim_end_matches('/'), step.dest)
        }
    }

    fn copy(&mut self, step: &CopyStep, unpack: bool) -> Result<(), StepError> {
        let sources: Vec<PathBuf> = step.sources.iter().map(|s| self.context.join(s)).collect();
        let dest = self.copy_dest(step);
        // Host files get a fixed owner and time (not the host's), so the
        // result depends only on what the cache key covers; archive
        // members keep what the archive says.
        let opts = CopyOptions {
            chown: step.chown,
            chmod: step.chmod,
            unpack,
            host_owner: Some((0, 0)),
            host_mtime: Some(COPY_MTIME),
        };
        let rootfs = self.tree.join("rootfs");
        let before = watch(&rootfs, &dest)?;
        let started = SystemTime::now();
        copy::copy(&self.tree, &sources, dest.as_bytes(), &opts, &self.work)?;
        settle_times(&before, &watch(&rootfs, &dest)?, started)
    }

    pub(super) fn write_manifest(&self) -> Result<(), StepError> {
        let path = self.tree.join("manifest");
        let manifest = self.manifest.as_ref().ok_or(StepError::Interrupted)?;
        let mut text = manifest.to_json_pretty();
        text.push('\n');
        fs::write(&path, text).map_err(|source| StepError::Io { path, source })
    }

    /// `RUN`: the manifest so far is written first, so the command gets
    /// its environment and working directory; `USER` is passed on.
    fn run(&mut self, argv: &[String]) -> Result<(), StepError> {
        self.write_manifest()?;
        let user = self
            .manifest
            .as_ref()
            .and_then(|m| m.app.as_ref())
            .map(|app| format!("{}:{}", app.user, app.group));
        let opts = RunOptions {
            user,
            ..RunOptions::default()
        };
        let command: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let report = run::run(&self.tree, &command, &opts)?;
        if report.status != 0 {
            return Err(StepError::Failed {
                status: report.status,
            });
        }
        Ok(())
    }

    /// Makes sure the tree holds the state after the last step (for the
    /// final build, or a kept tree).
    pub(super) fn finish_tree(&mut self) -> Result<(), StepError> {
        self.materialize()
    }
}

/// What [`overlay::intact_layer`] found of one layer.
type LayerCheck = Result<Option<(Layer, Tree)>, OverlayError>;

/// [`overlay::intact_layer`] of each of `ids`, in their order. The seal
/// checks walk whole layers, syscall after syscall, so they run on as
/// many threads as there are cores: a build starting from a stack of
/// cached steps waits for the largest share, not for the sum.
fn intact_layers(store: &Store, ids: &[ImageId]) -> Vec<LayerCheck> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, ids.len().max(1));
    if threads == 1 {
        return ids
            .iter()
            .map(|id| overlay::intact_layer(store, id))
            .collect();
    }
    let mut found: Vec<Option<LayerCheck>> = (0..ids.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || {
                    (first..ids.len())
                        .step_by(threads)
                        .map(|at| (at, overlay::intact_layer(store, &ids[at])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(results) => {
                    for (at, result) in results {
                        found[at] = Some(result);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    found
        .into_iter()
        .map(|result| result.unwrap_or(Ok(None)))
        .collect()
}

fn walk(rootfs: &Path) -> Result<Tree, StepError> {
    diff::walk(rootfs).map_err(|e| StepError::Io {
        path: rootfs.to_owned(),
        source: io::Error::other(e.to_string()),
    })
}

fn timestamp(time: SystemTime) -> Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        secs: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: since.subsec_nanos(),
    }
}

/// A directory's identity and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirStamp {
    ino: u64,
    mtime: Timestamp,
}

/// The directories a `COPY`, `ADD` or `WORKDIR` to `dest` (absolute, in
/// the rootfs) can change, by full path: `dest`'s ancestors (missing
/// parents are made, existing ones get entries) and everything below
/// `dest`. Nothing else is touched, so the rest of the tree is not
/// walked (on an overlay, each stat costs). A `dest` whose path goes
/// through a symlink or has `.`/`..` components resolves elsewhere: then
/// the whole rootfs is watched.
fn watch(rootfs: &Path, dest: &str) -> Result<HashMap<PathBuf, DirStamp>, StepError> {
    let mut dirs = HashMap::new();
    let components: Vec<&str> = dest.split('/').filter(|c| !c.is_empty()).collect();
    let mut whole = components.iter().any(|c| *c == "." || *c == "..");
    let mut at = rootfs.to_owned();
    let mut chain = vec![at.clone()];
    for component in &components {
        at.push(component);
        chain.push(at.clone());
    }
    if !whole {
        for (i, path) in chain.iter().enumerate() {
            let meta = FileMeta::from_path(path);
            match meta {
                Ok(Some(meta)) if meta.kind == EntryKind::Directory => {
                    dirs.insert(path.clone(), stamp(&meta));
                }
                // A symlink on the way leads elsewhere.
                Ok(Some(meta)) if meta.kind == EntryKind::Symlink => {
                    whole = true;
                    break;
                }
                // The destination (a file) or the first missing part:
                // nothing further exists.
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(source) => {
                    return Err(StepError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            }
            // Below the destination, every directory.
            if i + 1 == chain.len() {
                for (rel, meta) in walk(path)?.iter() {
                    if meta.kind == EntryKind::Directory {
                        let full = if rel == diff::ROOT_PATH {
                            path.clone()
                        } else {
                            path.join(std::ffi::OsStr::from_bytes(rel))
                        };
                        dirs.insert(full, stamp(meta));
                    }
                }
            }
        }
    }
    if whole {
        dirs.clear();
        let tree = walk(rootfs)?;
        for (rel, meta) in tree.iter() {
            if meta.kind == EntryKind::Directory {
                dirs.insert(tree.full_path(rel), stamp(meta));
            }
        }
    }
    Ok(dirs)
}

fn stamp(meta: &FileMeta) -> DirStamp {
    DirStamp {
        ino: meta.ino,
        mtime: meta.mtime,
    }
}

/// After a `COPY`, `ADD` or `WORKDIR`: directories that existed before
/// get their modification time back (the step only added to them), and
/// directories the step made with the current time (missing parents)
/// get [`COPY_MTIME`]. So the step's result is the same whenever it runs.
/// `before` and `after` are what [`watch`] saw of the same destination.
fn settle_times(
    before: &HashMap<PathBuf, DirStamp>,
    after: &HashMap<PathBuf, DirStamp>,
    started: SystemTime,
) -> Result<(), StepError> {
    let started = timestamp(started);
    for (full, now) in after {
        let mtime = match before.get(full) {
            Some(old) if old.ino == now.ino => {
                if old.mtime == now.mtime {
                    continue;
                }
                old.mtime
            }
            _ if now.mtime >= started => Timestamp {
                secs: COPY_MTIME,
                nanos: 0,
            },
            _ => continue,
        };
        let mtime = TimeSpec::new(mtime.secs, i64::from(mtime.nanos));
        utimensat(
            None,
            full,
            &TimeSpec::UTIME_OMIT,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|errno| StepError::Io {
            path: full.clone(),
            source: errno.into(),
        })?;
    }
    Ok(())
}
