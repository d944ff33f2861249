//! Finding and loading the sentence encoder.

use std::path::Path;

use anyhow::{Context, Result};
use docent_embed::{Encoder, EncoderConfig};
use docent_models::{Manifest, ModelKind, ModelSpec, ModelStore};

/// Loads the encoder named by `name`: a manifest name, a Hugging Face
/// repository id (`owner/name[@revision]`), or a local folder holding a
/// sentence-transformers model. `None` is the manifest's default encoder.
/// A model missing from this machine is fetched first.
pub fn load(name: Option<&str>, config: EncoderConfig) -> Result<Encoder> {
    if let Some(dir) = name.map(Path::new).filter(|p| p.is_dir()) {
        let id = dir.display().to_string();
        return Encoder::load(dir, &id, "local", config)
            .with_context(|| format!("loading the encoder in {}", dir.display()));
    }
    let spec = spec(name)?;
    let store = ModelStore::from_env();
    let local = store.ensure(&spec)?;
    Encoder::load(&local.dir, &spec.repo, &spec.revision, config)
        .with_context(|| format!("loading encoder {} from {}", spec.name, local.dir.display()))
}

/// The model spec for an encoder name, as [`load`] reads it.
pub fn spec(name: Option<&str>) -> Result<ModelSpec> {
    let manifest = Manifest::builtin();
    let Some(name) = name else {
        return Ok(manifest.default_encoder().clone());
    };
    if let Some(spec) = manifest.get(name) {
        anyhow::ensure!(
            spec.kind == ModelKind::Encoder,
            "{name} is a generator, not a sentence encoder"
        );
        return Ok(spec.clone());
    }
    let (repo, revision) = name.split_once('@').unwrap_or((name, "main"));
    anyhow::ensure!(
        repo.split('/').count() == 2,
        "unknown encoder {name:?}: give a name from `docent models list`, a Hugging Face id \
         like sentence-transformers/all-MiniLM-L6-v2, or a folder holding the model"
    );
    Ok(ModelSpec::adhoc_encoder(repo, revision))
}
