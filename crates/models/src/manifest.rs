use serde::Deserialize;

/// The manifest shipped with docent, `models/manifest.toml`.
const BUILTIN: &str = include_str!("../../../models/manifest.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Encoder,
    Generator,
}

/// One part of a file's offline mirror: a member of a Python wheel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MirrorPart {
    pub package: String,
    pub version: String,
    /// Path of the file inside the wheel (a zip).
    pub member: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileSpec {
    /// Path inside the repository.
    pub path: String,
    /// Lower-case hex sha256; `None` only for models named ad hoc by hub id.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// Parts to concatenate, in order; empty when there is no mirror.
    #[serde(default)]
    pub mirror: Vec<MirrorPart>,
    /// An optional file may be missing from the repository.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub kind: ModelKind,
    /// Hugging Face repository id, `owner/name`.
    pub repo: String,
    /// A commit hash, or a branch when no commit could be pinned.
    pub revision: String,
    #[serde(default)]
    pub description: String,
    /// `false` for a model whose files exist only in its mirror packages
    /// (a form of the model the hub repository does not hold): the hub is
    /// not tried.
    #[serde(default = "yes")]
    pub hub: bool,
    /// For an encoder: the retrieval settings calibrated for it.
    #[serde(default)]
    pub retrieval: Option<RetrievalSpec>,
    /// For an encoder whose files do not name the prefixes it was trained
    /// with (`config_sentence_transformers.json` `prompts`): the prefixes
    /// its model card prescribes.
    #[serde(default)]
    pub prefixes: Option<PrefixSpec>,
    /// For a language model: the built-in answer prompt it was measured
    /// best with (`models/prompts/NAME.toml`), if not the default.
    #[serde(default)]
    pub prompt: Option<String>,
    /// For a language model: below this probability of "yes" to its
    /// prompt's `check` ("do the sources answer the question?"), an answer
    /// is declined. Calibrated per model (`scripts/calibrate_answerable.py`);
    /// without it, the question is not asked.
    #[serde(default)]
    pub min_answerable: Option<f32>,
    /// A language model's threshold for the template's `confirm` question,
    /// asked once it has answered: below this probability that its sources
    /// state the answer, the answer is declined. Without it, the question
    /// is not asked.
    #[serde(default)]
    pub min_confirmed: Option<f32>,
    #[serde(rename = "file")]
    pub files: Vec<FileSpec>,
}

fn yes() -> bool {
    true
}

/// The text an encoder expects before a question and before a passage.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PrefixSpec {
    pub query: String,
    pub passage: String,
}

/// Retrieval settings that depend on the encoder's similarity scale,
/// calibrated by `scripts/calibrate_min_score.py`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct RetrievalSpec {
    /// The cosine below which a chunk is not used (none left: the question
    /// is declined), for a question in Latin script and for one in CJK.
    pub min_score_latin: f32,
    pub min_score_cjk: f32,
    /// The weight of dense scores in hybrid fusion for a question in Latin
    /// script, and for one in Hangul or other CJK script.
    pub dense_weight_latin: f32,
    pub dense_weight_cjk: f32,
    /// The cosine at which an answer sentence and a source sentence in
    /// another script count as saying the same (`benches/cross_language.rs`);
    /// absent for an encoder of one language.
    #[serde(default)]
    pub min_translation_similarity: Option<f32>,
    /// The gate's cosine for a chunk in another script than the question;
    /// absent for an encoder of one language.
    #[serde(default)]
    pub min_score_across: Option<f32>,
    /// How far a question is moved along the language direction to search
    /// the other language's chunks; absent for an encoder of one language.
    #[serde(default)]
    pub language_shift: Option<f32>,
}

impl ModelSpec {
    /// A sentence-transformers encoder named by hub id alone, with no
    /// pinned hashes: the files a BERT sentence encoder needs.
    pub fn adhoc_encoder(repo: &str, revision: &str) -> ModelSpec {
        let file = |path: &str, optional| FileSpec {
            path: path.into(),
            sha256: None,
            size: None,
            mirror: vec![],
            optional,
        };
        ModelSpec {
            name: repo.into(),
            kind: ModelKind::Encoder,
            repo: repo.into(),
            revision: revision.into(),
            description: format!("{repo} (not in the manifest; files are not pinned)"),
            hub: true,
            retrieval: None,
            prefixes: None,
            prompt: None,
            min_answerable: None,
            min_confirmed: None,
            files: vec![
                file("config.json", false),
                file("tokenizer.json", false),
                file("model.safetensors", false),
                file("modules.json", true),
                file("sentence_bert_config.json", true),
                file("1_Pooling/config.json", true),
            ],
        }
    }

    /// A GGUF generator named on the command line as `owner/name:file`, not
    /// in the manifest: its file is fetched but cannot be checked against a
    /// pinned hash.
    pub fn adhoc_generator(repo: &str, revision: &str, file: &str) -> ModelSpec {
        ModelSpec {
            name: format!("{repo}:{file}"),
            kind: ModelKind::Generator,
            repo: repo.into(),
            revision: revision.into(),
            description: format!("{repo}:{file} (not in the manifest; not pinned)"),
            hub: true,
            retrieval: None,
            prefixes: None,
            prompt: None,
            min_answerable: None,
            min_confirmed: None,
            files: vec![FileSpec {
                path: file.into(),
                sha256: None,
                size: None,
                mirror: vec![],
                optional: false,
            }],
        }
    }

    pub fn total_size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the model manifest is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("the model manifest is not valid: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelSpec>,
}

impl Manifest {
    /// The manifest compiled into docent.
    pub fn builtin() -> Manifest {
        Manifest::parse(BUILTIN).expect("models/manifest.toml is checked by the test suite")
    }

    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = toml::from_str(text)?;
        for model in &m.models {
            for f in &model.files {
                match &f.sha256 {
                    Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                    _ => {
                        return Err(ManifestError::Invalid(format!(
                            "{}: {} has no valid sha256",
                            model.name, f.path
                        )))
                    }
                }
            }
        }
        Ok(m)
    }

    /// Finds a model by manifest name or by hub repository id.
    pub fn get(&self, name: &str) -> Option<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name) || m.repo.eq_ignore_ascii_case(name))
    }

    /// The first encoder of the manifest: docent's default.
    pub fn default_encoder(&self) -> &ModelSpec {
        self.models
            .iter()
            .find(|m| m.kind == ModelKind::Encoder)
            .expect("the manifest names an encoder")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_is_complete() {
        let m = Manifest::builtin();
        assert_eq!(m.default_encoder().repo, "intfloat/multilingual-e5-small");
        for model in &m.models {
            assert!(!model.files.is_empty());
            // A form of a model only the hub holds is pinned to a commit.
            let hub_only = model.files.iter().all(|f| f.mirror.is_empty());
            if hub_only {
                assert!(model.hub, "{} can be fetched from nowhere", model.name);
                assert!(
                    model.revision.len() == 40
                        && model.revision.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{} is hub only and not pinned to a commit",
                    model.name
                );
            }
            for f in &model.files {
                assert!(f.size.is_some(), "{} has no size", f.path);
                assert!(hub_only || !f.mirror.is_empty(), "{} has no mirror", f.path);
            }
            if model.kind == ModelKind::Encoder {
                assert!(
                    model.retrieval.is_some(),
                    "{} is not calibrated",
                    model.name
                );
            }
        }
        assert!(m.get("sentence-transformers/all-minilm-l6-v2").is_some());
        assert!(m.get("gemma-3-270m-q4_k_m").is_some());
    }

    #[test]
    fn rejects_missing_hash() {
        let bad = r#"
[[model]]
name = "x"
kind = "encoder"
repo = "a/b"
revision = "main"
  [[model.file]]
  path = "f"
"#;
        assert!(matches!(
            Manifest::parse(bad),
            Err(ManifestError::Invalid(_))
        ));
    }
}
