//! Which models a name means, and loading them: the sentence encoder and the
//! language model, fetched into the Hugging Face cache first when missing.

use std::path::{Path, PathBuf};

use docent_core::RetrievalSettings;
use docent_embed::{Encoder, EncoderConfig};
use docent_generate::{Generator, GeneratorConfig, LayoutStore};
use docent_models::{Manifest, ModelKind, ModelSpec, ModelStore, PrefixSpec};
use serde::{Deserialize, Serialize};

use crate::RagError;

/// The language model answers come from unless another is named.
pub const DEFAULT_GENERATOR: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m";

/// A model as a trace records it: enough to know exactly which weights
/// produced an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The manifest name, Hugging Face id, or path it was named by.
    pub id: String,
    /// The repository revision (a commit) it was pinned to, or `local`.
    pub revision: String,
}

fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Encoder => "sentence encoder",
        ModelKind::Generator => "language model",
    }
}

/// The spec of an encoder named by a manifest name or a Hugging Face id
/// (`owner/name[@revision]`); `None` is the manifest's default encoder.
pub fn encoder_spec(name: Option<&str>) -> Result<ModelSpec, RagError> {
    let manifest = Manifest::builtin();
    let Some(name) = name else {
        return Ok(manifest.default_encoder().clone());
    };
    if let Some(spec) = manifest.get(name) {
        if spec.kind != ModelKind::Encoder {
            return Err(RagError::WrongKind {
                name: name.to_string(),
                is: kind_name(spec.kind),
                wanted: kind_name(ModelKind::Encoder),
            });
        }
        return Ok(spec.clone());
    }
    let (repo, revision) = name.split_once('@').unwrap_or((name, "main"));
    if repo.split('/').count() != 2 {
        return Err(RagError::UnknownEncoder {
            name: name.to_string(),
        });
    }
    // A pinned entry of the same repository and commit keeps its hashes.
    if let Some(spec) = manifest.models.iter().find(|m| {
        m.kind == ModelKind::Encoder
            && m.repo.eq_ignore_ascii_case(repo)
            && m.revision.eq_ignore_ascii_case(revision)
    }) {
        return Ok(spec.clone());
    }
    Ok(ModelSpec::adhoc_encoder(repo, revision))
}

/// Loads the encoder named by `name`: a manifest name, a Hugging Face
/// repository id (`owner/name[@revision]`), or a local folder holding a
/// sentence-transformers model; `None` is the manifest's default.
pub fn load_encoder(name: Option<&str>, config: EncoderConfig) -> Result<Encoder, RagError> {
    let loading = |path: &Path, source: RagError| RagError::Load {
        what: format!("encoder {}", name.unwrap_or("(default)")),
        path: path.display().to_string(),
        source: Box::new(source),
    };
    if let Some(dir) = name.map(Path::new).filter(|p| p.is_dir()) {
        let id = dir.display().to_string();
        return Encoder::load(dir, &id, "local", config).map_err(|e| loading(dir, e.into()));
    }
    let spec = encoder_spec(name)?;
    let local = ModelStore::from_env().ensure(&spec)?;
    let mut encoder = Encoder::load(&local.dir, &spec.repo, &spec.revision, config)
        .map_err(|e| loading(&local.dir, e.into()))?;
    if let Some(p) = prefixes(&spec) {
        encoder = encoder
            .with_default_prefixes(&p.query, &p.passage)
            .map_err(|e| loading(&local.dir, e.into()))?;
    }
    Ok(encoder.with_retrieval(retrieval_settings(&spec)))
}

/// A setting of an encoder that its files do not carry: its manifest
/// entry's, or for a repository named by hub id, that of a manifest entry
/// of the same repository that has it.
fn encoder_setting<T>(spec: &ModelSpec, get: impl Fn(&ModelSpec) -> Option<T>) -> Option<T> {
    get(spec).or_else(|| {
        Manifest::builtin()
            .models
            .iter()
            .filter(|m| m.repo.eq_ignore_ascii_case(&spec.repo))
            .find_map(&get)
    })
}

/// The prefixes an encoder was trained with when its files do not say
/// ([`encoder_setting`]).
pub fn prefixes(spec: &ModelSpec) -> Option<PrefixSpec> {
    encoder_setting(spec, |m| m.prefixes.clone())
}

/// The retrieval settings calibrated for an encoder ([`encoder_setting`]);
/// else all-MiniLM-L6-v2's.
pub fn retrieval_settings(spec: &ModelSpec) -> RetrievalSettings {
    encoder_setting(spec, |m| m.retrieval)
        .map(|r| RetrievalSettings {
            min_score_latin: r.min_score_latin,
            min_score_cjk: r.min_score_cjk,
            dense_weight_latin: r.dense_weight_latin,
            dense_weight_cjk: r.dense_weight_cjk,
            min_translation_similarity: r.min_translation_similarity,
            min_score_across: r.min_score_across,
            language_shift: r.language_shift,
        })
        .unwrap_or_default()
}

/// A language model file, found (and fetched if needed) from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorFile {
    pub model: ModelRef,
    pub path: PathBuf,
}

/// Finds the GGUF file a language model name means, fetching it if
/// needed: a manifest name, `owner/repo:file.gguf[@revision]`, or the path
/// of a `.gguf` file.
pub fn resolve_generator(name: &str) -> Result<GeneratorFile, RagError> {
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "gguf") && !name.contains(':') {
        if !path.is_file() {
            return Err(RagError::NoModelFile {
                path: path.display().to_string(),
            });
        }
        return Ok(GeneratorFile {
            model: ModelRef {
                id: name.to_string(),
                revision: "local".into(),
            },
            path: path.to_path_buf(),
        });
    }
    let unknown = || RagError::UnknownModel {
        name: name.to_string(),
    };
    let spec = if let Some(spec) = Manifest::builtin().get(name) {
        if spec.kind != ModelKind::Generator {
            return Err(RagError::WrongKind {
                name: name.to_string(),
                is: kind_name(spec.kind),
                wanted: kind_name(ModelKind::Generator),
            });
        }
        spec.clone()
    } else if let Some((repo, file)) = name.split_once(':') {
        let (file, revision) = file.split_once('@').unwrap_or((file, "main"));
        if repo.split('/').count() != 2 || !file.ends_with(".gguf") {
            return Err(unknown());
        }
        ModelSpec::adhoc_generator(repo, revision, file)
    } else {
        return Err(unknown());
    };
    let local = ModelStore::from_env().ensure(&spec)?;
    let path = local
        .files
        .iter()
        .find(|(p, _)| p.ends_with(".gguf"))
        .map(|(_, l)| l.clone())
        .ok_or_else(|| RagError::NoModelFile {
            path: format!("{} (no .gguf file in the model)", spec.name),
        })?;
    Ok(GeneratorFile {
        model: ModelRef {
            id: spec.name.clone(),
            revision: spec.revision.clone(),
        },
        path,
    })
}

/// The answer prompt for the language model `name`: the built-in one its
/// manifest entry names, else the default.
pub fn prompt_template(name: &str) -> docent_generate::PromptTemplate {
    Manifest::builtin()
        .get(name)
        .and_then(|spec| spec.prompt.as_deref())
        .and_then(docent_generate::PromptTemplate::builtin)
        .unwrap_or_default()
}

/// The probability of "yes" to the template's `confirm` question, asked
/// once the model has answered, below which the language model `name`'s
/// answer is declined, as its manifest entry calibrates it; 0 (not asked)
/// for a model without one.
pub fn min_confirmed(name: &str) -> f32 {
    Manifest::builtin()
        .get(name)
        .and_then(|spec| spec.min_confirmed)
        .unwrap_or(0.0)
}

/// The probability of "yes" to the answer prompt's check below which the
/// language model `name` declines, as its manifest entry calibrates it; 0
/// (the check is not asked) for a model without one.
pub fn min_answerable(name: &str) -> f32 {
    Manifest::builtin()
        .get(name)
        .and_then(|spec| spec.min_answerable)
        .unwrap_or(0.0)
}

/// Whether the language model `name` names is on disk already (a `.gguf`
/// path, or a model the Hugging Face cache holds, verified), so that
/// loading it fetches nothing.
pub fn generator_is_local(name: &str) -> bool {
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "gguf") && !name.contains(':') {
        return path.is_file();
    }
    let spec = match Manifest::builtin().get(name) {
        Some(spec) => spec.clone(),
        None => match name.split_once(':') {
            Some((repo, file)) => {
                let (file, revision) = file.split_once('@').unwrap_or((file, "main"));
                ModelSpec::adhoc_generator(repo, revision, file)
            }
            None => return false,
        },
    };
    matches!(ModelStore::from_env().locate(&spec), Ok(Some(_)))
}

/// How the language model is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorChoice {
    /// As [`resolve_generator`] reads it.
    pub model: String,
    /// Most tokens of prompt and answer together (the model's own trained
    /// context is used if smaller).
    pub context: usize,
    /// When the engine loads it.
    pub load: GeneratorLoad,
}

/// When an [`crate::Engine`] loads its language model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GeneratorLoad {
    /// On the first answer that needs it: a question declined at
    /// retrieval never loads it (a server's choice).
    #[default]
    OnFirstAnswer,
    /// At open, on a thread of its own, while the encoder and the index
    /// load and the question is retrieved (a one-question command's
    /// choice: it saves the shorter of the two from the time to first
    /// token). Only a model already on disk: one that must be fetched
    /// is fetched by the first answer, in the foreground.
    InBackground,
}

impl Default for GeneratorChoice {
    fn default() -> Self {
        GeneratorChoice {
            model: DEFAULT_GENERATOR.to_string(),
            context: GeneratorConfig::default().max_context,
            load: GeneratorLoad::OnFirstAnswer,
        }
    }
}

/// A loaded language model and what it is.
pub struct LoadedGenerator {
    pub generator: Generator,
    pub model: ModelRef,
    pub path: PathBuf,
}

/// Where language models' weight layouts are saved and read back, as the
/// environment says (see `StoreConfig::layouts_dir`).
pub fn layout_store() -> Option<LayoutStore> {
    ModelStore::from_env()
        .config()
        .layouts_dir
        .clone()
        .map(LayoutStore::new)
}

/// Resolves and loads the language model `choice` names.
pub fn load_generator(choice: &GeneratorChoice) -> Result<LoadedGenerator, RagError> {
    if choice.context < 2 {
        return Err(RagError::Config(format!(
            "a context of {} tokens is too small",
            choice.context
        )));
    }
    let file = resolve_generator(&choice.model)?;
    let generator = Generator::load(
        &file.path,
        GeneratorConfig {
            max_context: choice.context,
            layouts: layout_store(),
            ..GeneratorConfig::default()
        },
    )
    .map_err(|e| RagError::Load {
        what: format!("language model {}", file.model.id),
        path: file.path.display().to_string(),
        source: Box::new(e.into()),
    })?;
    Ok(LoadedGenerator {
        generator,
        model: file.model,
        path: file.path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_the_manifest_names_is_built_in() {
        for spec in &Manifest::builtin().models {
            if let Some(p) = &spec.prompt {
                assert!(
                    docent_generate::PromptTemplate::builtin(p).is_some(),
                    "{} names the prompt {p}, which is not built in",
                    spec.name
                );
            }
        }
        assert_ne!(
            prompt_template("qwen2.5-coder-0.5b-instruct-q4_k_m"),
            prompt_template(DEFAULT_GENERATOR)
        );
        assert_eq!(
            prompt_template("not-a-model"),
            docent_generate::PromptTemplate::default()
        );
    }

    #[test]
    fn e5_gets_its_prefixes_by_entry_or_by_repository() {
        let want = Some(PrefixSpec {
            query: "query: ".into(),
            passage: "passage: ".into(),
        });
        let manifest = Manifest::builtin();
        let hub = manifest.get("multilingual-e5-small-f32").unwrap();
        assert_eq!(prefixes(hub), want);
        let adhoc = encoder_spec(Some("intfloat/multilingual-e5-small@main")).unwrap();
        assert_eq!(prefixes(&adhoc), want);
        let minilm = manifest.get("all-minilm-l6-v2").unwrap();
        assert_eq!(prefixes(minilm), None);
        // The hub id at the pinned commit is the pinned entry.
        let pinned = encoder_spec(Some(
            "intfloat/multilingual-e5-small@614241f622f53c4eeff9890bdc4f31cfecc418b3",
        ))
        .unwrap();
        assert_eq!(pinned.name, "multilingual-e5-small-f32");
        assert!(pinned.files.iter().all(|f| f.sha256.is_some()));
    }
}
