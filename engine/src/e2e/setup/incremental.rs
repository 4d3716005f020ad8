//! Incremental setup: what each task of the setup graph last made, so that a re-run does only
//! what changed, and nothing goes stale.
//!
//! - An image's identity is a digest of what goes into it: the Dockerfile, the build-context
//!   files that `.dockerignore` lets through (BuildKit reads `<Dockerfile>.dockerignore` first),
//!   the build args, the prebuild commands, their environment and their declared `inputs`, the
//!   image's `env` and the node platform. Files are hashed by git (`git hash-object
//!   --stdin-paths`, in one process); the digest is a 128-bit hash of the sorted list.
//! - A cluster's identity is its `kube-system` namespace UID: a recreated cluster is a new one.
//! - Records (`target/e2e/incremental.json`): per image its digest, tag and image ID; per load
//!   the cluster and image ID; per deploy the cluster and a digest of its rendered inputs (chart,
//!   values, `--set` after expansion, manifests, the images it uses).
//! - A task is up to date when its record matches and a cheap look at the world agrees (the image
//!   is in the engine with that ID; the helm release exists; the manifests' objects exist).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use xshell::{cmd, Shell};

use crate::exec;
use crate::lint::value::{FromValue, Table, ToValue};

use crate::e2e::setup::dockerignore::{clean, DockerIgnore};

/// What the last successful tasks made.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// Kube context → its cluster's kube-system UID.
    pub(crate) clusters: BTreeMap<String, String>,
    pub(crate) images: BTreeMap<String, ImageRecord>,
    /// `<cluster>/<image name>` → what was loaded.
    pub(crate) loads: BTreeMap<String, LoadRecord>,
    /// Deploy name → what was deployed.
    pub(crate) deploys: BTreeMap<String, DeployRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageRecord {
    pub(crate) digest: String,
    /// The tag as built (`${DIGEST}` resolved).
    pub(crate) tag: String,
    /// What deploys name when it is not the tag: the registry reference an existing cluster
    /// pulls (`registry.example.com/team/demo:<digest>`).
    pub(crate) reference: String,
    pub(crate) image_id: String,
    /// Every input by key (`context:src/main.rs` → blob hash, `build-arg:X` → value), for
    /// saying what changed.
    pub(crate) inputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LoadRecord {
    pub(crate) cluster_uid: String,
    pub(crate) image_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeployRecord {
    pub(crate) cluster_uid: String,
    pub(crate) digest: String,
}

// The records file (`records.json`), read leniently: a key a newer version added is ignored.

impl ToValue for State {
    fn to_value(&self) -> Value {
        json!({
            "clusters": self.clusters,
            "images": self.images.to_value(),
            "loads": self.loads.to_value(),
            "deploys": self.deploys.to_value(),
        })
    }
}

impl ToValue for ImageRecord {
    fn to_value(&self) -> Value {
        json!({"digest": self.digest, "tag": self.tag, "reference": self.reference,
               "image_id": self.image_id, "inputs": self.inputs})
    }
}

impl ToValue for LoadRecord {
    fn to_value(&self) -> Value {
        json!({"cluster_uid": self.cluster_uid, "image_id": self.image_id})
    }
}

impl ToValue for DeployRecord {
    fn to_value(&self) -> Value {
        json!({"cluster_uid": self.cluster_uid, "digest": self.digest})
    }
}

impl FromValue for State {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        Ok(State {
            clusters: t.or_default("clusters")?,
            images: t.or_default("images")?,
            loads: t.or_default("loads")?,
            deploys: t.or_default("deploys")?,
        })
    }
}

impl FromValue for ImageRecord {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        Ok(ImageRecord {
            digest: t.req("digest")?,
            tag: t.req("tag")?,
            reference: t.or_default("reference")?,
            image_id: t.req("image_id")?,
            inputs: t.req("inputs")?,
        })
    }
}

impl FromValue for LoadRecord {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        Ok(LoadRecord { cluster_uid: t.req("cluster_uid")?, image_id: t.req("image_id")? })
    }
}

impl FromValue for DeployRecord {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        Ok(DeployRecord { cluster_uid: t.req("cluster_uid")?, digest: t.req("digest")? })
    }
}

/// The records, shared by the tasks of one setup run and written through after each change.
pub(crate) struct Store {
    path: PathBuf,
    state: Mutex<State>,
    /// Run everything (`--force`), still recording.
    pub(crate) force: bool,
}

impl Store {
    /// Where the records live: `incremental.json` in the state directory.
    pub(crate) fn path() -> std::path::PathBuf {
        crate::paths::state_root().join("incremental.json")
    }

    /// The records at `path`; none when there is no file. Records that cannot be read (not
    /// UTF-8, not JSON, not their shape) are no records: everything runs again, which is always
    /// safe. That is said on stderr, and the file is kept beside as `<path>.corrupt` (the next
    /// write would replace it) for whoever wants to see what broke it.
    pub(crate) fn open(path: PathBuf, force: bool) -> Store {
        let problem = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(bytes) => match std::str::from_utf8(&bytes) {
                Err(e) => Some(format!("is not UTF-8 text: {e}")),
                Ok(text) => match crate::lint::value::from_json::<State>(text) {
                    Ok(state) => return Store { path, state: Mutex::new(state), force },
                    Err(e) => Some(format!("is not a records file: {e}")),
                },
            },
        };
        if let Some(problem) = problem {
            let aside = PathBuf::from(format!("{}.corrupt", path.display()));
            let kept = match std::fs::rename(&path, &aside) {
                Ok(()) => format!("it is kept as {}", aside.display()),
                Err(e) => format!("it could not be moved to {}: {e}", aside.display()),
            };
            eprintln!(
                "warning: the incremental records {} {problem}; they are ignored, so every setup task runs again ({kept})",
                path.display()
            );
        }
        Store { path, state: Mutex::new(State::default()), force }
    }

    pub(crate) fn snapshot(&self) -> State {
        self.read(State::clone)
    }

    /// A look at the records under the lock (no copy of every image's input list).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        match self.state.lock() {
            Ok(state) => f(&state),
            Err(_) => f(&State::default()),
        }
    }

    /// Changes the records and writes them (a temp file renamed over the old one).
    pub(crate) fn update(&self, f: impl FnOnce(&mut State)) -> Result<()> {
        let mut state =
            self.state.lock().map_err(|_| anyhow::anyhow!("the incremental records are poisoned"))?;
        f(&mut state);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = self.path.with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_string_pretty(&state.to_value())?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("writing {}", self.path.display()))
    }

    pub(crate) fn cluster_uid(&self, cluster: &str) -> Option<String> {
        self.read(|s| s.clusters.get(cluster).cloned()).filter(|u| !u.is_empty())
    }

    /// `IMAGE_<NAME>` (the built reference) and `IMAGE_TAG_<NAME>` (its tag part) for every
    /// recorded image: what deploys name to follow the digest.
    pub(crate) fn image_vars(&self) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        for (name, image) in self.read(|s| s.images.clone()) {
            let var = name.to_ascii_uppercase().replace('-', "_");
            let tag_part = image.tag.rsplit_once(':').map(|(_, t)| t.to_string()).unwrap_or_default();
            let reference =
                if image.reference.is_empty() { image.tag.clone() } else { image.reference.clone() };
            vars.push((format!("IMAGE_{var}"), reference));
            vars.push((format!("IMAGE_TAG_{var}"), tag_part));
        }
        vars
    }
}

/// `${DIGEST}` in a tag: the first 12 hex digits of the image's digest.
pub(crate) fn resolve_tag(template: &str, digest: &str) -> String {
    template.replace("${DIGEST}", digest.get(..12).unwrap_or(digest))
}

/// What goes into one image, as keyed inputs.
pub(crate) struct ImageSpec<'a> {
    pub(crate) dockerfile: &'a Path,
    pub(crate) context: &'a Path,
    /// Declared prebuild inputs: globs, each relative to its directory.
    pub(crate) inputs: &'a [(PathBuf, String)],
    /// Paths in keys are shown relative to this (the repository root), so that a checkout's
    /// place does not change the digest.
    pub(crate) root: &'a Path,
    /// Build args, prebuild commands and env, image env, platform: already expanded.
    pub(crate) scalars: Vec<(String, String)>,
}

/// The keyed inputs of an image and their digest.
pub(crate) fn image_inputs(
    sh: &Shell,
    spec: &ImageSpec<'_>,
    log: &Path,
) -> Result<(String, BTreeMap<String, String>)> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let shown = |p: &Path| p.strip_prefix(spec.root).unwrap_or(p).display().to_string();
    files.push((format!("dockerfile:{}", shown(spec.dockerfile)), spec.dockerfile.to_path_buf()));
    let ignore = dockerignore_for(spec.dockerfile, spec.context)?;
    for rel in context_files(spec.context, &ignore)? {
        files.push((format!("context:{rel}"), spec.context.join(&rel)));
    }
    for (base, glob) in spec.inputs {
        let matched = glob_files(base, glob)?;
        if matched.is_empty() {
            bail!("inputs {glob:?} matches no file under {}", base.display());
        }
        for rel in matched {
            files.push((format!("input:{rel}"), base.join(&rel)));
        }
    }
    // A symbolic link in the context (or the inputs) is what Docker sends as itself: the CLI's
    // context tar writes a link entry whose Linkname is `os.Readlink(path)`, never what it points
    // to (moby/moby pkg/archive/archive.go, `addTarFile`, v20.10.24). So it enters the digest as
    // its target text, and a link to a directory or a dangling one is an input like any other
    // (git hash-object cannot hash either: `fatal: Unable to hash (null)`). The Dockerfile is read
    // through a link, as the build reads it.
    let mut inputs: BTreeMap<String, String> = BTreeMap::new();
    let mut regular: Vec<(String, PathBuf)> = Vec::new();
    for (i, (key, path)) in files.into_iter().enumerate() {
        let link = i > 0 && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if link {
            let target =
                std::fs::read_link(&path).with_context(|| format!("reading the link {}", path.display()))?;
            inputs.insert(key, format!("symlink {}", target.to_string_lossy()));
        } else {
            regular.push((key, path));
        }
    }
    let hashes = hash_files(sh, &regular.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(), log)?;
    inputs.extend(regular.into_iter().map(|(k, _)| k).zip(hashes));
    for (k, v) in &spec.scalars {
        inputs.insert(k.clone(), v.clone());
    }
    let digest = digest_of(&inputs);
    Ok((digest, inputs))
}

/// The digest of keyed inputs (file contents enter as git's blob hashes): FNV-1a, 128 bits, over
/// the sorted, length-prefixed `key value` pairs. Change detection, not a security boundary:
/// 128 bits make an accidental collision negligible, and it costs no process.
pub(crate) fn digest_of(inputs: &BTreeMap<String, String>) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            h = (h ^ u128::from(*b)).wrapping_mul(PRIME);
        }
    };
    for (k, v) in inputs {
        eat(k.as_bytes());
        eat(v.as_bytes());
    }
    format!("{h:032x}")
}

/// `git hash-object --stdin-paths`: one blob hash per file, in order.
fn hash_files(sh: &Shell, files: &[PathBuf], log: &Path) -> Result<Vec<String>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut list = String::new();
    for f in files {
        let text =
            f.to_str().with_context(|| format!("{}: not UTF-8, cannot be hashed by path", f.display()))?;
        if text.contains('\n') {
            bail!("{text:?}: a file name with a newline cannot be hashed");
        }
        list.push_str(text);
        list.push('\n');
    }
    let out = exec::cmd(cmd!(sh, "git hash-object --no-filters --stdin-paths"))
        .stdin(list)
        .log(log)
        .timeout(Duration::from_secs(300))
        .run()
        .with_context(|| {
            let unreadable: Vec<String> = files
                .iter()
                .filter(|f| std::fs::File::open(f).and_then(|h| h.metadata()).map_or(true, |m| !m.is_file()))
                .map(|f| f.display().to_string())
                .collect();
            if unreadable.is_empty() {
                "hashing the image's files with git".to_string()
            } else {
                format!(
                    "hashing the image's files with git: these cannot be read as files: {}",
                    unreadable.join(", ")
                )
            }
        })?;
    let hashes: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    if hashes.len() != files.len() {
        bail!("git hash-object gave {} hashes for {} files", hashes.len(), files.len());
    }
    Ok(hashes)
}

/// Differences between two input sets, for saying why a build runs ("digest changed: ...").
pub(crate) fn changed_inputs(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in now {
        match before.get(k) {
            None => out.push(format!("{k} (new)")),
            Some(b) if b != v => out.push(k.clone()),
            Some(_) => {}
        }
    }
    for k in before.keys().filter(|k| !now.contains_key(*k)) {
        out.push(format!("{k} (gone)"));
    }
    out
}

/// `a, b, c and 4 more`.
pub(crate) fn some(items: &[String]) -> String {
    match items.len() {
        0 => "nothing".into(),
        n if n <= 3 => items.join(", "),
        n => format!("{} and {} more", items[..3].join(", "), n - 3),
    }
}

/// BuildKit reads `<Dockerfile>.dockerignore` next to the Dockerfile when it exists, else the
/// context's `.dockerignore` (Docker docs, "Build context": .dockerignore files).
fn dockerignore_for(dockerfile: &Path, context: &Path) -> Result<DockerIgnore> {
    let specific = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    for path in [specific, context.join(".dockerignore")] {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return DockerIgnore::parse(&text).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(DockerIgnore::default())
}

/// The context's files the build sees (relative, slash-separated, sorted).
fn context_files(context: &Path, ignore: &DockerIgnore) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(context.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let kind = entry.file_type().with_context(|| format!("reading {}", entry.path().display()))?;
            let excluded = ignore.excludes(&path).with_context(|| format!("the .dockerignore, on {path}"))?;
            if kind.is_dir() {
                if !excluded || ignore.may_reinclude_below(&path) {
                    stack.push((entry.path(), path));
                }
            } else if !excluded && (kind.is_file() || kind.is_symlink()) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The part of a glob before its first wildcard (`test/demo` of `test/demo/**`), cleaned; empty
/// when it starts with one.
pub(crate) fn literal_prefix(glob: &str) -> String {
    let cleaned = clean(glob);
    let literal: Vec<&str> =
        cleaned.split('/').take_while(|s| !s.contains(['*', '?', '[', '\\'])).filter(|s| *s != ".").collect();
    literal.join("/")
}

/// Files under `root` matching `glob` (the `.dockerignore` syntax), walked from its literal
/// prefix only.
fn glob_files(root: &Path, glob: &str) -> Result<Vec<String>> {
    let pattern = DockerIgnore::parse(glob).with_context(|| format!("inputs glob {glob:?}"))?;
    let start = literal_prefix(glob);
    let base = root.join(&start);
    if base.is_file() {
        return Ok(if pattern.excludes(&start)? { vec![start] } else { Vec::new() });
    }
    if !base.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut stack = vec![(base, start)];
    while let Some((dir, rel)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() || rel == "." { name } else { format!("{rel}/{name}") };
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push((entry.path(), path));
            } else if pattern.excludes(&path).with_context(|| format!("inputs glob {glob:?}"))? {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_what_was_written() {
        let image = ImageRecord {
            digest: "d1".into(),
            tag: "app:d1".into(),
            reference: "reg/app:d1".into(),
            image_id: "sha256:1".into(),
            inputs: [("context:a".to_string(), "h".to_string())].into(),
        };
        let state = State {
            clusters: [("kind-e2e".to_string(), "uid".to_string())].into(),
            images: [("app".to_string(), image)].into(),
            loads: [(
                "e2e/app".to_string(),
                LoadRecord { cluster_uid: "uid".into(), image_id: "sha256:1".into() },
            )]
            .into(),
            deploys: [("infra".to_string(), DeployRecord { cluster_uid: "uid".into(), digest: "d1".into() })]
                .into(),
        };
        let text = serde_json::to_string_pretty(&state.to_value()).unwrap();
        let back: State = crate::lint::value::from_json(&text).unwrap();
        assert_eq!(back.clusters, state.clusters);
        assert_eq!(back.images, state.images);
        assert_eq!(back.loads, state.loads);
        assert_eq!(back.deploys, state.deploys);
    }

    #[test]
    fn context_walk_honours_the_ignore_file_and_globs_walk_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["src/a.rs", "src/b.txt", "target/debug/big", "target/rel/bin", "Dockerfile"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let ig = DockerIgnore::parse("*\n!target/rel/bin\n!src/*.rs\n").unwrap();
        assert_eq!(context_files(dir.path(), &ig).unwrap(), ["src/a.rs", "target/rel/bin"]);
        assert_eq!(glob_files(dir.path(), "src/**").unwrap(), ["src/a.rs", "src/b.txt"]);
        assert_eq!(glob_files(dir.path(), "src/*.rs").unwrap(), ["src/a.rs"]);
        assert_eq!(glob_files(dir.path(), "Dockerfile").unwrap(), ["Dockerfile"]);
        assert!(glob_files(dir.path(), "nope/**").unwrap().is_empty());
    }

    #[test]
    fn changes_are_named() {
        let a: BTreeMap<String, String> =
            [("context:a".to_string(), "1".to_string()), ("build-arg:X".into(), "1".into())].into();
        let b: BTreeMap<String, String> =
            [("context:a".to_string(), "2".to_string()), ("context:b".into(), "1".into())].into();
        assert_eq!(changed_inputs(&a, &b), ["context:a", "context:b (new)", "build-arg:X (gone)"]);
        assert_eq!(resolve_tag("demo:${DIGEST}", "0123456789abcdef"), "demo:0123456789ab");
        // Keys and values cannot run into each other, and order does not matter.
        let one: BTreeMap<String, String> = [("ab".to_string(), "c".to_string())].into();
        let two: BTreeMap<String, String> = [("a".to_string(), "bc".to_string())].into();
        assert_ne!(digest_of(&one), digest_of(&two));
        assert_eq!(digest_of(&a), digest_of(&a.clone().into_iter().rev().collect()));
        assert_eq!(digest_of(&a).len(), 32);
    }
}
