//! What the benches that replay recorded answers share: the `--out` files
//! of `docent eval --generate` runs named on the command line, and each
//! recorded prompt cut after its question.

/// The `.jsonl` files among the command line's arguments; an error when
/// there are none, since there is then nothing to replay.
pub fn jsonl_args() -> anyhow::Result<Vec<String>> {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.ends_with(".jsonl"))
        .collect();
    if files.is_empty() {
        anyhow::bail!("give the --out files of `docent eval --generate` runs (.jsonl)");
    }
    Ok(files)
}

/// The recorded prompt cut after its question, and what follows the user
/// message (the chat template's end of turn and the assistant's cue).
pub fn split(prompt: &str) -> Option<(&str, &str)> {
    let q = prompt.rfind("\nQuestion: ")?;
    let end_of_question = q + 1 + prompt[q + 1..].find('\n')?;
    let end_of_user = end_of_question + prompt[end_of_question..].find("<|im_end|>")?;
    Some((&prompt[..end_of_question], &prompt[end_of_user..]))
}
