//! The generation loop: prompt in, streamed text out.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::gguf::GgufFile;
use crate::layouts::LayoutStore;
use crate::model::Model;
use crate::sampler::{Sampler, SamplerConfig};
use crate::template::ChatTemplate;
use crate::tokenizer::{GgufTokenizer, TextStream};
use crate::GenerateError;

/// How a model is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Upper bound on the context (prompt plus answer), in tokens; the
    /// model's own trained context is used if smaller.
    pub max_context: usize,
    /// Tokens of the prompt run through the model at once.
    pub prompt_batch: usize,
    /// Where the weights' layouts are saved after a first load and read
    /// back by later ones (see [`LayoutStore`]); `None` builds them at
    /// every load.
    pub layouts: Option<LayoutStore>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            max_context: 4096,
            prompt_batch: 256,
            layouts: None,
        }
    }
}

/// What one generation is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Text that ends the answer when the model writes it (it is not shown).
    pub stop_strings: Vec<String>,
    /// End the answer where a line or sentence repeats an earlier one (the
    /// repeat is not shown; see `repeat.rs`).
    pub stop_on_repeat: bool,
    /// A yes-or-no question the model answers before it writes anything.
    pub gate: Option<Gate>,
    /// Tokens the answer may not begin with: asked again after an answer
    /// that only repeated the question, the model is kept from starting
    /// it the same way.
    pub not_first: Vec<u32>,
}

/// A yes-or-no question put to the model before it answers, such as "do
/// the sources answer the question?".
///
/// `prompt` is the question as a whole prompt. It usually shares its start
/// (system message, sources) with the answer's prompt: that part is read
/// once, the rest of `prompt` after it, and then, from the shared part
/// again, the rest of the answer's prompt. So a check after a prompt of
/// 400 tokens costs the tokens in which the two differ.
///
/// The model's probability of "yes" against "no" (any case) as its first
/// word is [`Generation::gate_yes`]. Below `min_yes`, `fallback` is the
/// reply and generation stops with [`StopReason::Gated`].
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub prompt: Vec<u32>,
    pub min_yes: f32,
    pub fallback: String,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            sampler: SamplerConfig::default(),
            stop_strings: Vec::new(),
            stop_on_repeat: true,
            gate: None,
            not_first: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    EndOfTurn,
    /// It wrote a stop string.
    StopString,
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The caller asked to stop.
    Cancelled,
    /// A line or sentence repeated an earlier one.
    Repetition,
    /// The model said no to the [`Gate`]'s question: the reply is its
    /// fallback.
    Gated,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub prompt_tokens: usize,
    /// Of `prompt_tokens`, those not read again: the start the prompt
    /// shares with what the model's cache held from the generation before.
    pub cached_tokens: usize,
    pub prompt_ms: f64,
    /// From the start of prompt processing to the first answer token.
    pub first_token_ms: f64,
    pub decode_tokens: usize,
    pub decode_ms: f64,
}

impl Timings {
    /// Prompt tokens read per second (those kept in the cache not counted).
    pub fn prompt_tokens_per_s(&self) -> f64 {
        per_second(self.prompt_tokens - self.cached_tokens, self.prompt_ms)
    }

    pub fn decode_tokens_per_s(&self) -> f64 {
        per_second(self.decode_tokens, self.decode_ms)
    }
}

fn per_second(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    pub timings: Timings,
    /// The probability of "yes" to the [`Gate`]'s question, when there
    /// was one and the model could be asked it (one whose cache cannot
    /// rewind is not asked).
    pub gate_yes: Option<f32>,
    /// The model's probability of each token in `tokens` (softmax of its
    /// logits, before sampling settings), a measure of how sure it was.
    pub token_probs: Vec<f32>,
}

/// A language model with its tokenizer and chat template.
pub struct Generator {
    model: Model,
    tokenizer: GgufTokenizer,
    chat: ChatTemplate,
    cfg: GeneratorConfig,
    load_ms: f64,
    /// The tokens the model's cache holds, in order, as far as this knows
    /// (what [`Generator::yes_after`] can start from); empty when unknown.
    cached: Vec<u32>,
}

impl Generator {
    /// Opens a GGUF file, builds its tokenizer and chat template, and loads
    /// its weights.
    pub fn load(path: &Path, cfg: GeneratorConfig) -> Result<Self, GenerateError> {
        let t0 = Instant::now();
        let file = GgufFile::open(path)?;
        let arch = file.architecture()?;
        if !crate::model::SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(GenerateError::UnsupportedArchitecture { architecture: arch });
        }
        let tokenizer = GgufTokenizer::from_gguf(&file)?;
        let name = |id: Option<u32>| {
            id.and_then(|i| tokenizer.token_text(i))
                .unwrap_or_default()
                .to_string()
        };
        let chat = ChatTemplate::new(
            file.opt_string("tokenizer.chat_template").as_deref(),
            &name(tokenizer.bos()),
            &name(tokenizer.eos()),
        )?;
        let model = Model::load(file, cfg.max_context, cfg.layouts.as_ref())?;
        Ok(Self {
            model,
            tokenizer,
            chat,
            cfg,
            load_ms: t0.elapsed().as_secs_f64() * 1000.0,
            cached: Vec::new(),
        })
    }

    /// The network itself, for callers that drive it token by token.
    pub fn model_mut(&mut self) -> &mut Model {
        self.cached.clear();
        &mut self.model
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat
    }

    pub fn architecture(&self) -> &str {
        self.model.architecture()
    }

    /// Tokens that prompt and answer share.
    pub fn context(&self) -> usize {
        self.model.context()
    }

    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Tokenizes a rendered prompt: special tokens in it are parsed, and the
    /// model's BOS is added if it wants one and the template did not.
    pub fn tokenize_prompt(&self, text: &str) -> Vec<u32> {
        let mut ids = self.tokenizer.encode(text, false, true);
        if self.tokenizer.adds_bos() {
            if let Some(bos) = self.tokenizer.bos() {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        ids
    }

    /// Stop strings suited to the template: a base model with the plain
    /// fallback tends to go on to invent the next question.
    pub fn default_stop_strings(&self) -> Vec<String> {
        if self.chat.is_fallback() {
            vec!["\nQuestion:".into(), "\nSources:".into(), "\n\n\n".into()]
        } else {
            Vec::new()
        }
    }

    /// Refuses an empty `prompt` (named `what` in the message) and one that
    /// leaves no room in the context for a token after it.
    fn check_prompt(&self, prompt: &[u32], what: &str) -> Result<(), GenerateError> {
        if prompt.is_empty() {
            return Err(GenerateError::Config(format!("{what} is empty")));
        }
        if prompt.len() >= self.model.context() {
            return Err(GenerateError::PromptTooLong {
                tokens: prompt.len(),
                budget: self.model.context() - 1,
            });
        }
        Ok(())
    }

    /// Runs `prompt` and generates an answer, calling `on_text` with each
    /// piece of text as soon as it is complete; `on_text` returns false to
    /// stop early.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        cfg: &GenerationConfig,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GenerateError> {
        cfg.sampler.validate()?;
        self.check_prompt(prompt, "the prompt")?;
        let mut sampler = Sampler::new(cfg.sampler.clone());
        let mut timings = Timings {
            prompt_tokens: prompt.len(),
            ..Timings::default()
        };
        let t0 = Instant::now();
        let kept = self.kept_for(prompt);
        self.cached.clear();
        let (mut logits, gate_yes, kept) = self.read_prompt(prompt, kept, cfg.gate.as_ref())?;
        self.cached = prompt.to_vec();
        timings.cached_tokens = kept;
        timings.prompt_ms = ms(t0);
        if let (Some(gate), Some(yes)) = (&cfg.gate, gate_yes) {
            if yes < gate.min_yes {
                timings.first_token_ms = ms(t0);
                on_text(&gate.fallback);
                return Ok(Generation {
                    text: gate.fallback.clone(),
                    tokens: Vec::new(),
                    stop: StopReason::Gated,
                    timings,
                    gate_yes,
                    token_probs: Vec::new(),
                });
            }
        }
        let mut history: Vec<u32> = prompt.to_vec();
        let mut out_tokens = Vec::new();
        let mut token_probs = Vec::new();
        let mut text = String::new();
        let mut emitted = 0usize;
        let mut stream = TextStream::default();
        let t_decode = Instant::now();
        let max_stop = cfg.stop_strings.iter().map(|s| s.len()).max().unwrap_or(0);
        let stop = loop {
            if out_tokens.len() >= cfg.max_tokens {
                break StopReason::MaxTokens;
            }
            if out_tokens.is_empty() {
                for &t in &cfg.not_first {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let lse = log_sum_exp(&logits);
            let raw = logits.clone();
            let next = sampler.sample(std::mem::take(&mut logits), &history)?;
            let prob = raw.get(next as usize).map_or(0.0, |&l| (l - lse).exp());
            if out_tokens.is_empty() {
                timings.first_token_ms = ms(t0);
            }
            if self.tokenizer.is_end_of_generation(next) {
                break StopReason::EndOfTurn;
            }
            out_tokens.push(next);
            token_probs.push(prob);
            history.push(next);
            text.push_str(&stream.push(&self.tokenizer, next));
            if let Some(at) = cfg
                .stop_strings
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(at);
                break StopReason::StopString;
            }
            if cfg.stop_on_repeat {
                if let Some(at) = crate::repeat::repeated_segment(&text) {
                    text.truncate(at.max(emitted));
                    break StopReason::Repetition;
                }
            }
            // Hold back a tail that could still become a stop string or a
            // repeat.
            let mut safe = safe_prefix(&text, &cfg.stop_strings, max_stop);
            if cfg.stop_on_repeat {
                if let Some(at) = crate::repeat::held_back_from(&text) {
                    safe = safe.min(at.max(emitted));
                }
            }
            if safe > emitted {
                let keep_going = on_text(&text[emitted..safe]);
                emitted = safe;
                if !keep_going {
                    break StopReason::Cancelled;
                }
            }
            if self.model.position() + 1 >= self.model.context() {
                break StopReason::ContextFull;
            }
            logits = self
                .model
                .forward(&[next])
                .inspect_err(|_| self.cached.clear())?;
            self.cached.push(next);
        };
        if !matches!(stop, StopReason::StopString | StopReason::Repetition) {
            text.push_str(&stream.finish());
        }
        if text.len() > emitted {
            on_text(&text[emitted..]);
        }
        timings.decode_tokens = out_tokens.len();
        timings.decode_ms = ms(t_decode);
        Ok(Generation {
            text,
            tokens: out_tokens,
            stop,
            timings,
            gate_yes,
            token_probs,
        })
    }

    /// The model's probability of "yes" against "no" as the next word after
    /// `prompt`, a yes-or-no question such as "do the sources state this
    /// answer?". The start it shares with what the cache holds (the last
    /// generation's prompt and answer) is not read again, so a question
    /// that repeats the answer's system message and sources costs only the
    /// tokens after them. `None` for a model whose cache cannot go back.
    pub fn yes_after(&mut self, prompt: &[u32]) -> Result<Option<f32>, GenerateError> {
        if !self.model.can_rewind() {
            return Ok(None);
        }
        self.check_prompt(prompt, "the question")?;
        let shared = self.kept_for(prompt);
        self.cached.clear();
        self.model.rewind(shared);
        let mut logits = Vec::new();
        for part in prompt[shared..].chunks(self.cfg.prompt_batch.max(1)) {
            logits = self.model.forward(part)?;
        }
        self.cached = prompt.to_vec();
        Ok(Some(self.yes_share(&logits)))
    }

    /// How many tokens at the start of `prompt` the model's cache holds
    /// already, and need not be read again: the start it shares with the
    /// last generation's prompt and answer (for a server or an evaluation,
    /// at least the system message). The last token is read in any case,
    /// since it gives the logits; 0 for a model whose cache cannot go back.
    /// Every row is computed on its own, so what is kept is what reading it
    /// again would give, bit for bit (`tests/generate.rs`).
    fn kept_for(&self, prompt: &[u32]) -> usize {
        if !self.model.can_rewind() {
            return 0;
        }
        self.cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1))
            .min(self.model.position())
    }

    /// Runs `prompt`, of which the cache holds the first `kept` tokens, and
    /// returns the logits after it, answering `gate`'s question on the way
    /// (see [`Gate`]), and how many tokens it did not read again.
    fn read_prompt(
        &mut self,
        prompt: &[u32],
        kept: usize,
        gate: Option<&Gate>,
    ) -> Result<(Vec<f32>, Option<f32>, usize), GenerateError> {
        let batch = self.cfg.prompt_batch.max(1);
        let gate = gate.filter(|g| {
            self.model.can_rewind() && !g.prompt.is_empty() && g.prompt.len() < self.model.context()
        });
        let shared = gate.map_or(0, |g| {
            // Both rests must be non-empty: each needs logits of its own.
            let n = g
                .prompt
                .iter()
                .zip(prompt)
                .take_while(|(a, b)| a == b)
                .count();
            n.min(prompt.len() - 1).min(g.prompt.len() - 1)
        });
        // The gate's question needs the cache at `shared` and no further.
        let kept = match gate {
            Some(_) => kept.min(shared),
            None => kept,
        };
        // `kept` is 0 for a model that cannot rewind (`kept_for`).
        if !self.model.rewind(kept) {
            self.model.reset();
        }
        let mut logits = Vec::new();
        for part in prompt[kept..shared.max(kept)].chunks(batch) {
            logits = self.model.forward(part)?;
        }
        let mut yes = None;
        if let Some(g) = gate {
            for part in g.prompt[shared..].chunks(batch) {
                logits = self.model.forward(part)?;
            }
            let rewound = self.model.rewind(shared);
            debug_assert!(rewound, "checked by can_rewind");
            yes = Some(self.yes_share(&logits));
        }
        for part in prompt[shared.max(kept)..].chunks(batch) {
            logits = self.model.forward(part)?;
        }
        Ok((logits, yes, kept))
    }

    /// The probability of "yes" against "no" as the next word.
    fn yes_share(&self, logits: &[f32]) -> f32 {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mass = |words: &[&str]| -> f32 {
            let mut ids: Vec<u32> = words
                .iter()
                .filter_map(|w| match self.tokenizer.encode(w, false, false)[..] {
                    [id] => Some(id),
                    _ => None,
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.iter()
                .filter_map(|&id| logits.get(id as usize))
                .map(|&l| (l - max).exp())
                .sum()
        };
        let yes = mass(&["yes", "Yes", "YES", " yes", " Yes"]);
        let no = mass(&["no", "No", "NO", " no", " No"]);
        if yes + no > 0.0 {
            yes / (yes + no)
        } else {
            0.5
        }
    }
}

/// `ln Σ exp(l)` over `logits`, kept finite by taking out their maximum.
fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Length of the longest prefix of `text` that no continuation can turn
/// into a stop string.
fn safe_prefix(text: &str, stops: &[String], max_stop: usize) -> usize {
    if max_stop == 0 {
        return text.len();
    }
    let mut safe = text.len();
    for s in stops {
        for k in (1..s.len().min(text.len() + 1)).rev() {
            if text.is_char_boundary(text.len() - k)
                && s.is_char_boundary(k)
                && text.ends_with(&s[..k])
            {
                safe = safe.min(text.len() - k);
                break;
            }
        }
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::safe_prefix;

    #[test]
    fn holds_back_a_possible_stop_string() {
        let stops = vec!["\nQuestion:".to_string()];
        assert_eq!(safe_prefix("answer\nQue", &stops, 10), 6);
        assert_eq!(safe_prefix("answer.", &stops, 10), 7);
        assert_eq!(safe_prefix("a\n", &stops, 10), 1);
    }
}
