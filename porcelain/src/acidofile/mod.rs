//! The Acidofile: a small build language on top of `startbuild`, `copy`,
//! `run` and `build` (grammar in [`parse`] and `acido-build(5)`).
//!
//! [`build_file`] runs the steps in a build tree of its own: `FROM` renders
//! the base image into it with `startbuild` (or, for `FROM scratch`,
//! starts from an empty rootfs and a manifest with no dependency),
//! `COPY`/`ADD` go through [`crate::copy`], `RUN` through [`crate::run`]
//! (which reads the manifest written so far, so `ENV`, `WORKDIR` and
//! `USER` apply to later `RUN`s), and the other instructions edit the
//! manifest. Each manifest edit is checked by decoding the edited
//! manifest with the reference's rules, so a bad value fails at its line.
//! At the end the tree is packed by [`crate::build`] into an image holding
//! only what differs from the base. The tree is removed afterwards, on
//! success and on error, unless the caller asked to keep it.
//!
//! Module map:
//! - [`parse`]: the grammar.

pub mod parse;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::{ImageManifest, ManifestError};
use acido_plumbing::store::Store;
use serde_json::{json, Map, Value};

use crate::build::{self, BuildCmdError, BuildOptions, BuildReport};
use crate::copy::{self, CopyError, CopyOptions};
use crate::progress::Progress;
use crate::run::{self, RunError, RunOptions};
use crate::startbuild::{self, StartBuildError};

use self::parse::{Base, CopyStep, Instruction, ParseError, Step};

/// The `acVersion` of manifests written for `FROM scratch` (the appc
/// version the reference tools implement, aci-format §5).
const AC_VERSION: &str = "0.8.11";

/// The longest instruction text quoted in an error.
const QUOTE_LIMIT: usize = 60;

/// How to build an Acidofile.
#[derive(Debug, Clone)]
pub struct AcidofileOptions {
    /// Where the image goes (an output file and/or the store).
    pub build: BuildOptions,
    /// Run the steps in this directory (it must not exist or be empty)
    /// and keep it, instead of a temp dir that is removed.
    pub keep_tree: Option<PathBuf>,
    /// The directory `COPY` and `ADD` sources are relative to (default:
    /// the Acidofile's directory).
    pub context: Option<PathBuf>,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct AcidofileReport {
    /// Instructions run, `FROM` included.
    pub steps: usize,
    /// The base image (`None` for `FROM scratch`).
    pub base: Option<ImageId>,
    /// What packing did (the new image id is `build.pack.id`).
    pub build: BuildReport,
    /// The kept step tree, with [`AcidofileOptions::keep_tree`].
    pub tree: Option<PathBuf>,
}

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// `FROM`: the base image could not be rendered.
    #[error(transparent)]
    StartBuild(#[from] StartBuildError),
    /// `COPY`/`ADD`/`WORKDIR`: writing into the tree failed.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// `RUN`: the command could not be run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// `RUN`: the command failed.
    #[error("command exited with status {status}")]
    Failed {
        /// Its exit status (128+N for signal N).
        status: u8,
    },
    /// The instruction would make the manifest invalid.
    #[error("the manifest would be invalid: {source}")]
    Manifest {
        /// The reference's verdict on the edited manifest.
        source: ManifestError,
    },
    /// A relative `WORKDIR` with no absolute one before it.
    #[error("{path:?} is relative and no WORKDIR before it is absolute")]
    RelativeWorkdir {
        /// The path given.
        path: String,
    },
    /// Reading or writing a file of the tree failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The build was interrupted.
    #[error("interrupted")]
    Interrupted,
}

/// Why an Acidofile build failed. Nothing is left behind but a kept tree.
#[derive(Debug, thiserror::Error)]
pub enum AcidofileError {
    /// The Acidofile cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The Acidofile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// `FROM scratch` without a `NAME`.
    #[error("{}:{line}: FROM scratch: an image without a base needs a NAME instruction", file.display())]
    ScratchWithoutName {
        /// The Acidofile.
        file: PathBuf,
        /// The line of `FROM`.
        line: usize,
    },
    /// The work directory could not be made.
    #[error("{}: cannot create the build's work directory: {source}", path.display())]
    WorkDir {
        /// Where.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A step failed.
    #[error("{}:{line}: step {step} ({text}): {source}", file.display())]
    Step {
        /// The Acidofile.
        file: PathBuf,
        /// The instruction's line.
        line: usize,
        /// The step's number (1 for `FROM`).
        step: usize,
        /// The instruction as written (shortened).
        text: String,
        /// What went wrong.
        source: Box<StepError>,
    },
    /// Packing the result failed (or no output was asked for).
    #[error("{}: {source}", file.display())]
    Build {
        /// The Acidofile.
        file: PathBuf,
        /// What went wrong.
        source: BuildCmdError,
    },
}

/// Builds the image the Acidofile `file` describes and writes or stores
/// it as `opts.build` says. `temp_parent` holds the work directory.
pub fn build_file(
    store: &Store,
    file: &Path,
    opts: &AcidofileOptions,
    temp_parent: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<AcidofileReport, AcidofileError> {
    let build_err = |source| AcidofileError::Build {
        file: file.to_owned(),
        source,
    };
    // What `build` would refuse at the end is refused before any work.
    if opts.build.output.is_none() && !opts.build.import {
        return Err(build_err(BuildCmdError::NoOutput));
    }
    if let Some(out) = &opts.build.output {
        if !opts.build.overwrite && fs::symlink_metadata(out).is_ok() {
            return Err(build_err(BuildCmdError::OutputExists { path: out.clone() }));
        }
    }
    let bytes = fs::read(file).map_err(|source| AcidofileError::Read {
        path: file.to_owned(),
        source,
    })?;
    let instructions = parse::parse(file, &bytes)?;
    if let Some(first) = instructions.first() {
        let named = instructions.iter().any(|i| matches!(i.step, Step::Name(_)));
        if first.step == Step::From(Base::Scratch) && !named {
            return Err(AcidofileError::ScratchWithoutName {
                file: file.to_owned(),
                line: first.line,
            });
        }
    }
    let context = match &opts.context {
        Some(dir) => dir.clone(),
        None => match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            // A bare file name: sources are relative to the current
            // directory, and named in errors as written.
            _ => PathBuf::new(),
        },
    };
    let work = tempfile::Builder::new()
        .prefix("acido-acidofile-")
        .tempdir_in(temp_parent)
        .map_err(|source| AcidofileError::WorkDir {
            path: temp_parent.to_owned(),
            source,
        })?
        .keep();
    let _work_guard = RemoveOnDrop(work.clone());
    let tree = opts.keep_tree.clone().unwrap_or_else(|| work.join("tree"));
    let mut builder = Builder {
        store,
        file,
        context,
        tree: tree.clone(),
        work: work.clone(),
        temp_parent,
        progress: Arc::clone(&progress),
        interrupt,
        manifest: None,
        base: None,
        total: instructions.len(),
    };
    let result = builder.run_all(&instructions).and_then(|()| {
        progress.note("building the image");
        build::build(store, &tree, &opts.build, &work, progress.as_ref()).map_err(build_err)
    });
    if opts.keep_tree.is_none() {
        // The tree goes with the work dir; its build state in the store
        // would only be a stale leftover.
        if let Ok(state) = store.build_state_path(&tree) {
            let _ = fs::remove_file(state);
        }
    }
    let report = result?;
    Ok(AcidofileReport {
        steps: instructions.len(),
        base: builder.base,
        build: report,
        tree: opts.keep_tree.clone(),
    })
}

/// Removes a directory tree we made, read-only directories included.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        // Directories are made writable first: a read-only directory from
        // an image would stop the removal as a normal user. Symlinks are
        // never followed (walkdir and remove_dir_all use lstat).
        for entry in walkdir::WalkDir::new(&self.0).into_iter().flatten() {
            if entry.file_type().is_dir() {
                let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
            }
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Builder<'a> {
    store: &'a Store,
    file: &'a Path,
    context: PathBuf,
    tree: PathBuf,
    work: PathBuf,
    temp_parent: &'a Path,
    progress: Arc<dyn Progress>,
    interrupt: &'a AtomicBool,
    /// The manifest as edited so far (set by `FROM`).
    manifest: Option<ImageManifest>,
    base: Option<ImageId>,
    total: usize,
}

/// An instruction's text for an error line.
fn shorten(text: &str) -> String {
    if text.chars().count() <= QUOTE_LIMIT {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(QUOTE_LIMIT).collect();
    short.push_str("...");
    short
}

impl Builder<'_> {
    fn run_all(&mut self, instructions: &[Instruction]) -> Result<(), AcidofileError> {
        for (index, instruction) in instructions.iter().enumerate() {
            let step = index + 1;
            self.progress.note(&format!(
                "step {step}/{}: {}",
                self.total,
                shorten(&instruction.text)
            ));
            let result = if self.interrupt.load(Ordering::Relaxed) {
                Err(StepError::Interrupted)
            } else {
                self.run_step(instructions, instruction)
            };
            result.map_err(|source| AcidofileError::Step {
                file: self.file.to_owned(),
                line: instruction.line,
                step,
                text: shorten(&instruction.text),
                source: Box::new(source),
            })?;
        }
        self.write_manifest()
            .map_err(|source| AcidofileError::Step {
                file: self.file.to_owned(),
                line: instructions.last().map_or(0, |i| i.line),
                step: instructions.len(),
                text: instructions
                    .last()
                    .map_or_else(String::new, |i| shorten(&i.text)),
                source: Box::new(source),
            })
    }

    fn run_step(
        &mut self,
        all: &[Instruction],
        instruction: &Instruction,
    ) -> Result<(), StepError> {
        match &instruction.step {
            Step::From(base) => self.from(all, base),
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
                copy::make_dir(&self.tree, dir.as_bytes())?;
                self.edit_app(|app| {
                    app.insert("workingDirectory".into(), json!(dir));
                })
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

    /// `FROM`: the tree and the starting manifest.
    fn from(&mut self, all: &[Instruction], base: &Base) -> Result<(), StepError> {
        match base {
            Base::Image(image) => {
                let report = startbuild::startbuild(
                    self.store,
                    image,
                    Some(&self.tree),
                    self.temp_parent,
                    Arc::clone(&self.progress),
                    self.interrupt,
                )?;
                self.base = Some(report.base);
                let path = self.tree.join("manifest");
                let bytes = fs::read(&path).map_err(|source| StepError::Io { path, source })?;
                let manifest = ImageManifest::from_slice(&bytes)
                    .map_err(|source| StepError::Manifest { source })?;
                self.manifest = Some(manifest);
                Ok(())
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
                let rootfs = self.tree.join("rootfs");
                let io_err = |path: &Path| {
                    let path = path.to_owned();
                    move |source| StepError::Io { path, source }
                };
                fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
                fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(&rootfs))?;
                let start = json!({
                    "acKind": "ImageManifest",
                    "acVersion": AC_VERSION,
                    "name": name,
                });
                self.manifest = Some(checked(&start)?);
                Ok(())
            }
        }
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

    fn copy(&mut self, step: &CopyStep, unpack: bool) -> Result<(), StepError> {
        let sources: Vec<PathBuf> = step.sources.iter().map(|s| self.context.join(s)).collect();
        // A relative destination is taken from the working directory, as
        // Dockerfile does; a trailing `/` is kept (it means "into").
        let dest = if step.dest.starts_with('/') {
            step.dest.clone()
        } else {
            format!("{}/{}", self.workdir().trim_end_matches('/'), step.dest)
        };
        let opts = CopyOptions {
            chown: step.chown,
            chmod: step.chmod,
            unpack,
        };
        copy::copy(&self.tree, &sources, dest.as_bytes(), &opts, &self.work)?;
        Ok(())
    }

    fn write_manifest(&self) -> Result<(), StepError> {
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
}

/// Replaces the item called `name` in the array `key` of `map` (made
/// when missing, or not an array), or appends `item` to it.
fn upsert(map: &mut Map<String, Value>, key: &str, name: &str, item: Value) {
    let mut items = match map.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    match items
        .iter_mut()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
    {
        Some(slot) => *slot = item,
        None => items.push(item),
    }
    map.insert(key.to_owned(), Value::Array(items));
}

/// Decodes an edited manifest with the reference's rules.
fn checked(value: &Value) -> Result<ImageManifest, StepError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StepError::Io {
        path: PathBuf::from("manifest"),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })?;
    ImageManifest::from_slice(&bytes).map_err(|source| StepError::Manifest { source })
}
