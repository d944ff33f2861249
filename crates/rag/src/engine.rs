//! The engine: an index and its models, opened once, answering questions
//! from any number of threads.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use docent_embed::Encoder;
use docent_generate::{
    build_again_prompt, build_chat_prompt, build_check_prompt, build_confirm_prompt,
    build_translate_prompt, Gate, GenerationConfig, Generator, PromptTemplate, StopReason, Turn,
};
use docent_index::{live_generation, Index};

use crate::answer::{
    is_decline, no_answer_text, Abstention, Answer, AnswerConfig, Citation, Event,
    QueryTranslation, SourceFit,
};
use crate::crosslingual::{self, CrossLanguage};
use crate::echo;
use crate::excerpt;
use crate::grounding::{self, SentenceSupport};
use crate::indexer::{build_index, load_encoder_for, IndexConfig, IndexEvent, IndexReport};
use crate::models::{
    generator_is_local, load_encoder, load_generator, GeneratorChoice, GeneratorLoad,
    LoadedGenerator, ModelRef,
};
use crate::quote;
use crate::retrieve::{self, Retrieval, RetrieveConfig};
use crate::rewrite;
use crate::statement;
use crate::tidy::Tidy;
use crate::trace::{
    new_trace_id, unix_ms, AnswerTimings, Confidence, IndexRef, PromptTrace, SourceRef, Spans,
    Stage, Trace, TraceSettings,
};
use crate::RagError;

/// How far below the retrieval gate a question's closest chunk may be for
/// the question to be translated and searched again in the documents'
/// other language ([`QueryTranslation`]). On `corpus/`, Korean questions
/// whose answer only an English page holds came 0.010 and 0.022 below
/// their threshold, off-topic questions 0.023 to 0.108 below it: those
/// farther off are declined at once, without loading the model.
const TRANSLATION_MARGIN: f32 = 0.03;

/// An index with its encoder and language model, shared by every thread
/// that asks (`Engine` is `Sync`; put it in an `Arc`).
///
/// * **Retrieval runs in parallel.** The index is shared: its graph is
///   read-only once loaded and its store queries take connections from a
///   pool. The encoder is shared too: embedding a question reads its
///   weights and allocates its own buffers.
/// * **Generation runs one at a time**, behind a lock. A generation
///   already spreads each product over every core (rayon's pool), so two
///   at once would each run at half speed, while a second copy of the
///   model and its cache would double the memory. Retrieval never waits
///   for the lock: only prompt building and decoding hold it.
/// * **A new generation of the index is picked up without a restart.**
///   Each request compares the index it holds with the live generation
///   (one small file read) and opens the new one when a writer has
///   published; requests under way finish on the one they started with,
///   which stays on disk until its last reader lets go. Should the new one
///   fail to open (another publish racing it), the request is answered
///   from the one held, and the next request tries again; a new generation
///   built with another encoder is an error.
/// * The language model is loaded on the first answer that needs it (a
///   question declined at retrieval never loads it, unless its closest
///   chunk came near the gate and the index holds the other language, to
///   which it is then translated: [`QueryTranslation`]), or at open in the
///   background ([`GeneratorLoad`]).
pub struct Engine {
    index_dir: PathBuf,
    encoder: Arc<Encoder>,
    encoder_ref: ModelRef,
    index: RwLock<Arc<Index>>,
    generator_choice: GeneratorChoice,
    generator: Mutex<Option<LoadedGenerator>>,
    /// The load started at open ([`GeneratorLoad::InBackground`]), until
    /// the first answer takes it.
    pending: Mutex<Option<Pending>>,
}

type Pending = std::thread::JoinHandle<Result<LoadedGenerator, RagError>>;

/// Renders the answer's prompt with these turns and sources, within a
/// budget of tokens.
type BuildPrompt<'a> = dyn Fn(
        &[Turn],
        &[docent_generate::Source],
        usize,
    ) -> Result<docent_generate::Prompt, docent_generate::GenerateError>
    + 'a;

/// Cuts the sources that are too long for their share of the prompt's
/// `budget` to their sentences most about the question ([`excerpt`]), when
/// they do not all fit whole. The shares are equal ([`SourceFit::Excerpt`])
/// or taken in rank order ([`SourceFit::Fill`]); [`SourceFit::Whole`] cuts
/// nothing. The share is of what the prompt leaves without earlier turns:
/// those are dropped before sources are cut. A citation then holds the text
/// the model read and the line that text starts on.
fn fit_excerpts(
    fit: SourceFit,
    citations: &mut [Citation],
    question: &str,
    budget: usize,
    build: &BuildPrompt,
    count: &dyn Fn(&str) -> usize,
) {
    let shares_of: fn(&[usize], usize) -> Vec<usize> = match fit {
        SourceFit::Fill => excerpt::fill,
        SourceFit::Excerpt => excerpt::shares,
        SourceFit::Whole => return,
    };
    let sources: Vec<_> = citations.iter().map(Citation::source).collect();
    if matches!(build(&[], &sources, budget), Ok(p) if p.sources_used == sources.len()) {
        return;
    }
    // What the prompt takes besides the sources' text.
    let bare: Vec<_> = sources
        .iter()
        .map(|s| docent_generate::Source {
            label: s.label.clone(),
            text: String::new(),
        })
        .collect();
    let Ok(frame) = build(&[], &bare, usize::MAX) else {
        return;
    };
    // Token counts are not additive at the seams: keep a little slack.
    let slack = 2 * sources.len();
    let Some(room) = budget.checked_sub(frame.tokens.len() + slack) else {
        return;
    };
    let sizes: Vec<usize> = sources.iter().map(|s| count(&s.text)).collect();
    for (c, share) in citations.iter_mut().zip(shares_of(&sizes, room)) {
        if share == 0 {
            // Left whole, and so left out by the prompt's builder.
            continue;
        }
        if let Some(e) = excerpt::excerpt(&c.text, question, share, count) {
            c.text = e.text;
            c.line += e.lines_skipped;
        }
    }
}

/// Starts loading the language model on a thread of its own, if `choice`
/// asks for it.
fn start_loading(choice: &GeneratorChoice) -> Option<Pending> {
    if choice.load != GeneratorLoad::InBackground || !generator_is_local(&choice.model) {
        return None;
    }
    let choice = choice.clone();
    std::thread::Builder::new()
        .name("docent-model-load".into())
        .spawn(move || load_generator(&choice))
        .ok()
}

impl Engine {
    /// Opens the index at `index_dir` with the encoder `encoder` names
    /// (by default, the one the index was built with).
    pub fn open(
        index_dir: &Path,
        encoder: Option<&str>,
        generator: GeneratorChoice,
    ) -> Result<Engine, RagError> {
        let pending = start_loading(&generator);
        let index = Index::open(index_dir)?;
        let name = encoder
            .map(str::to_string)
            .unwrap_or_else(|| index.meta().encoder.id.clone());
        let encoder = load_encoder(Some(&name), Default::default())?;
        Self::from_parts(index_dir, index, Arc::new(encoder), generator, pending)
    }

    /// Indexes `docs` into `index_dir` first (only new and changed files
    /// are embedded), then opens the engine over the result.
    pub fn open_indexing(
        index_dir: &Path,
        docs: &IndexConfig,
        encoder: Option<&str>,
        generator: GeneratorChoice,
        on_event: &mut dyn FnMut(IndexEvent<'_>),
    ) -> Result<(Engine, IndexReport), RagError> {
        let pending = start_loading(&generator);
        let encoder = load_encoder_for(index_dir, encoder, docs.batch_size)?;
        let report = build_index(index_dir, docs, &encoder, on_event)?;
        let index = Index::open(index_dir)?;
        let engine = Self::from_parts(index_dir, index, Arc::new(encoder), generator, pending)?;
        Ok((engine, report))
    }

    /// Opens the index at `index_dir` with an encoder already loaded.
    pub fn with_encoder(
        index_dir: &Path,
        encoder: Arc<Encoder>,
        generator: GeneratorChoice,
    ) -> Result<Engine, RagError> {
        let pending = start_loading(&generator);
        let index = Index::open(index_dir)?;
        Self::from_parts(index_dir, index, encoder, generator, pending)
    }

    fn from_parts(
        index_dir: &Path,
        index: Index,
        encoder: Arc<Encoder>,
        generator: GeneratorChoice,
        pending: Option<Pending>,
    ) -> Result<Engine, RagError> {
        index.check_encoder(encoder.info())?;
        let info = encoder.info();
        Ok(Engine {
            index_dir: index_dir.to_path_buf(),
            encoder_ref: ModelRef {
                id: info.id.clone(),
                revision: info.revision.clone(),
            },
            encoder,
            index: RwLock::new(Arc::new(index)),
            generator_choice: generator,
            generator: Mutex::new(None),
            pending: Mutex::new(pending),
        })
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The live index: the one held, or the generation a writer has
    /// published since, opened now.
    pub fn index(&self) -> Result<Arc<Index>, RagError> {
        let held = self.index.read().unwrap_or_else(|e| e.into_inner()).clone();
        let live = live_generation(&self.index_dir)?;
        match live {
            Some(gen) if gen != held.generation() => {
                let mut slot = self.index.write().unwrap_or_else(|e| e.into_inner());
                if slot.generation() != gen {
                    match Index::open(&self.index_dir) {
                        Ok(index) => {
                            index.check_encoder(self.encoder.info())?;
                            *slot = Arc::new(index);
                        }
                        // The held generation is still whole (its readers
                        // hold it on disk): a publish racing this open must
                        // not fail the request. The next one tries again.
                        Err(_) => return Ok(slot.clone()),
                    }
                }
                Ok(slot.clone())
            }
            // Unchanged, or removed from under us: keep what is held.
            _ => Ok(held),
        }
    }

    /// Embeds `question` and retrieves its best chunks.
    pub fn retrieve(&self, question: &str, cfg: &RetrieveConfig) -> Result<Retrieval, RagError> {
        if question.trim().is_empty() {
            return Err(RagError::EmptyQuestion);
        }
        let index = self.index()?;
        let mut spans = Spans::start();
        retrieve::retrieve(&index, &self.encoder, question, cfg, &mut spans)
    }

    /// Loads the language model now, if it is not loaded yet (otherwise
    /// the first answer that needs it does); returns the load time in
    /// milliseconds, 0 when it was already loaded.
    pub fn load_generator(&self) -> Result<f64, RagError> {
        let mut slot = self.generator.lock().unwrap_or_else(|e| e.into_inner());
        self.ensure_generator(&mut slot)
    }

    /// The generator's slot, locked, with the model loaded (its load timed
    /// in `spans` and the trace when this loaded it).
    fn generator_slot(
        &self,
        spans: &mut Spans,
        record: &mut Record,
    ) -> Result<std::sync::MutexGuard<'_, Option<LoadedGenerator>>, RagError> {
        let mut slot = self.generator.lock().unwrap_or_else(|e| e.into_inner());
        let start = spans.now_ms();
        let load_ms = self.ensure_generator(&mut slot)?;
        if load_ms > 0.0 {
            spans.push(Stage::ModelLoad, start, spans.now_ms() - start);
        }
        record.trace.timings.model_load_ms += load_ms;
        Ok(slot)
    }

    fn ensure_generator(&self, slot: &mut Option<LoadedGenerator>) -> Result<f64, RagError> {
        if slot.is_some() {
            return Ok(0.0);
        }
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let loaded = match pending.map(|p| p.join()) {
            Some(Ok(loaded)) => loaded?,
            Some(Err(_)) => {
                return Err(RagError::Config(
                    "loading the language model failed unexpectedly (its thread panicked)".into(),
                ))
            }
            None => load_generator(&self.generator_choice)?,
        };
        let ms = loaded.generator.load_ms();
        *slot = Some(loaded);
        Ok(ms)
    }

    /// The language model's id, once it is loaded.
    pub fn generator_model(&self) -> Option<ModelRef> {
        let slot = self.generator.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(|g| g.model.clone())
    }

    /// Answers `question`, after the earlier turns `history` (oldest
    /// first), from the index's documents: retrieve, keep the chunks at
    /// least `cfg.min_score` (else the encoder's calibrated threshold) similar to the question (none: decline without
    /// the model), fit the prompt to the context, and generate. `on_event`
    /// sees the sources, the prompt and each piece of text as it comes, and
    /// may cancel by returning `Break`.
    pub fn answer(
        &self,
        question: &str,
        history: &[Turn],
        cfg: &AnswerConfig,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<Answer, RagError> {
        cfg.validate()?;
        if question.trim().is_empty() {
            return Err(RagError::EmptyQuestion);
        }
        let started_at_ms = unix_ms();
        let mut spans = Spans::start();
        let index = self.index()?;
        // A follow-up names its topic only through the conversation.
        let retrieval_query = rewrite::standalone_query(question, history, cfg.rewrite);
        let query = retrieval_query.as_deref().unwrap_or(question);
        let retrieval = retrieve::retrieve_with(
            &index,
            &self.encoder,
            query,
            &cfg.retrieve,
            retrieve::Coverage::BothSidesOfAComparison,
            &mut spans,
        )?;
        let retrieval_ms = spans.now_ms();
        let settings = index.meta().encoder.retrieval;
        let min_score = cfg
            .min_score
            .unwrap_or_else(|| settings.min_score(question));
        // A chunk in another language than the question has its own
        // threshold, unless the caller set one for all.
        let min_across = settings
            .min_score_across
            .filter(|_| cfg.min_score.is_none());
        let (relevant, best, best_across) = spans.time(Stage::Filter, || {
            gate(&retrieval, question, min_score, min_across)
        });
        let mut record = Record {
            trace: Trace {
                id: new_trace_id(),
                started_at_ms,
                question: question.to_string(),
                history_turns: history.len(),
                retrieval_query,
                translated_query: None,
                translated_answer_from: None,
                encoder: self.encoder_ref.clone(),
                model: None,
                index: IndexRef {
                    root: index.meta().root.clone(),
                    generation: index.generation().to_string(),
                    chunks: index.len(),
                },
                settings: TraceSettings {
                    k: cfg.retrieve.k,
                    mode: cfg.retrieve.mode,
                    ef: retrieval.ef,
                    min_score,
                    min_score_across: min_across,
                    max_tokens: cfg.max_tokens,
                    context: None,
                    sampler: cfg.sampler.clone(),
                },
                spans: Vec::new(),
                candidates: retrieval.candidates.clone(),
                prompt: None,
                answer: String::new(),
                declined_text: None,
                asked_again: None,
                declined_support: Vec::new(),
                support: Vec::new(),
                sources: Vec::new(),
                abstained: None,
                answerable: None,
                confirmed: None,
                confidence: None,
                stop: None,
                timings: AnswerTimings {
                    retrieval_ms,
                    ..AnswerTimings::default()
                },
            },
        };
        // Only the sources given to the model count as kept.
        record.keep(&[]);

        // Nothing in the question's language answers it: the documents'
        // other language is searched with the question translated, once.
        let mut relevant = relevant;
        let translates = cfg.translate != QueryTranslation::Off && cfg.template.translate.is_some();
        let mut search_again = translates;
        // The question as translated, when its sources are read with it.
        let mut translation: Option<String> = None;
        let second = SecondSearch {
            index: &index,
            encoder: &self.encoder,
            question,
            cfg,
        };
        if relevant.is_empty() && search_again && best >= min_score - TRANSLATION_MARGIN {
            search_again = false;
            if let Some(to) = language_to_try(&index, question, &retrieval)? {
                let mut slot = self.generator_slot(&mut spans, &mut record)?;
                let g = &mut slot.as_mut().expect("loaded").generator;
                if let Some((found, query)) = search_in(to, g, &second, &mut spans, &mut record)? {
                    relevant = found;
                    translation = Some(query);
                }
            }
        }
        if relevant.is_empty() {
            let across = min_across.filter(|_| best_across.is_finite());
            let abstained = Abstention::NoRelevantSource {
                best_similarity: if best.is_finite() { best } else { 0.0 },
                min_score,
                best_across: across.map(|_| best_across),
                min_score_across: across,
            };
            let _ = on_event(Event::End {
                stop: None,
                abstained: Some(&abstained),
            });
            return Ok(record.finish(
                spans,
                no_answer_text(question).to_string(),
                Some(abstained),
                Vec::new(),
                0,
                None,
                None,
            ));
        }

        // Generation, one at a time.
        let mut slot = self.generator_slot(&mut spans, &mut record)?;
        let loaded = slot.as_mut().expect("loaded");
        record.trace.model = Some(loaded.model.clone());
        let g = &mut loaded.generator;
        let context = g.context();
        record.trace.settings.context = Some(context);
        if cfg.max_tokens >= context {
            return Err(RagError::NoRoomForPrompt {
                max_tokens: cfg.max_tokens,
                context,
            });
        }
        let min_answerable = cfg
            .min_answerable
            .unwrap_or_else(|| crate::models::min_answerable(&self.generator_choice.model));
        let room = context - cfg.max_tokens;
        let budget = room.min(cfg.max_prompt_tokens);
        let (prompt, sources, citations, generation, written, gen_start) = loop {
            // Sources all in the other language than the question's are
            // read with the question translated, and the answer written in
            // theirs is translated back below: the model reads and writes
            // its sources' language better than it crosses languages, and
            // the grounding check then compares words with words.
            if translation.is_none() && translates {
                let to = crosslingual::sources_language(
                    question,
                    relevant.iter().map(|c| c.text.as_str()),
                );
                if let Some(to) = to {
                    let start = spans.now_ms();
                    translation = translate_text(g, &cfg.template, question, "question", to)?;
                    spans.push(Stage::Translation, start, spans.now_ms() - start);
                    record.trace.translated_query = translation.clone();
                    // Searching with it would find these sources again (and
                    // a question the model did not translate, nothing).
                    search_again = false;
                }
            }
            let asked = translation.as_deref().unwrap_or(question);
            let (prompt, sources) = spans.time(Stage::Prompt, || {
                let build =
                    |history: &[Turn], sources: &[docent_generate::Source], budget: usize| {
                        build_chat_prompt(
                            &cfg.template,
                            g.chat_template(),
                            history,
                            asked,
                            sources,
                            budget,
                            &|text| g.tokenize_prompt(text),
                        )
                    };
                fit_excerpts(
                    cfg.source_fit,
                    &mut relevant,
                    asked,
                    budget,
                    &build,
                    &|text| g.tokenize_prompt(text).len(),
                );
                let sources: Vec<_> = relevant.iter().map(Citation::source).collect();
                let prompt = match build(history, &sources, budget) {
                    Ok(p) if p.sources_used > 0 => Ok(p),
                    // Over the prompt limit with even one source: the best one
                    // goes in anyway, as far as the context holds it.
                    _ => build(history, &sources[..1], room).map(|p| docent_generate::Prompt {
                        sources_dropped: sources.len() - p.sources_used,
                        ..p
                    }),
                };
                prompt.map(|p| (p, sources))
            })?;
            let mut citations = relevant;
            let dropped: Vec<u64> = citations[prompt.sources_used..]
                .iter()
                .map(|c| c.chunk_id)
                .collect();
            citations.truncate(prompt.sources_used);
            record.keep(&citations);
            record.trace.prompt = Some(PromptTrace {
                tokens: prompt.tokens.len(),
                history_turns: prompt.turns_used,
                source_ids: citations.iter().map(|c| c.chunk_id).collect(),
                dropped_ids: dropped,
                dropped_turns: prompt.turns_dropped,
            });
            // The sources go to the front ends before the model reads
            // them; after a second search, the new ones replace them.
            let mut cancelled = on_event(Event::Sources(&citations)).is_break();
            cancelled = cancelled
                || on_event(Event::Prompt {
                    tokens: prompt.tokens.len(),
                    context,
                    sources_dropped: prompt.sources_dropped,
                    turns_dropped: prompt.turns_dropped,
                    text: &prompt.text,
                })
                .is_break();
            if cancelled {
                let _ = on_event(Event::End {
                    stop: Some(StopReason::Cancelled),
                    abstained: None,
                });
                return Ok(record.finish(
                    spans,
                    String::new(),
                    None,
                    citations,
                    prompt.sources_dropped,
                    Some(prompt.text),
                    Some(StopReason::Cancelled),
                ));
            }
            let gate = if min_answerable > 0.0 {
                build_check_prompt(
                    &cfg.template,
                    g.chat_template(),
                    &history[history.len() - prompt.turns_used..],
                    asked,
                    &sources[..prompt.sources_used],
                    &|text| g.tokenize_prompt(text),
                )
                .transpose()?
                .map(|prompt| Gate {
                    prompt,
                    min_yes: min_answerable,
                    // Held back while a second search may follow.
                    fallback: if search_again {
                        String::new()
                    } else {
                        no_answer_text(question).to_string()
                    },
                })
            } else {
                None
            };
            let gen_cfg = GenerationConfig {
                max_tokens: cfg.max_tokens,
                sampler: cfg.sampler.clone(),
                stop_strings: g.default_stop_strings(),
                stop_on_repeat: true,
                gate,
                not_first: Vec::new(),
            };
            let gen_start = spans.now_ms();
            // Marks the model puts in front of what they cite are moved after
            // it as the text streams, so every front end reads the answer the
            // grounding check reads.
            let mut tidy = Tidy::new();
            // An answer in the sources' language is shown once translated.
            let stream = translation.is_none();
            let generation = g.generate(&prompt.tokens, &gen_cfg, &mut |piece| {
                let piece = tidy.push(piece);
                if stream && !cancelled && !piece.is_empty() {
                    cancelled = on_event(Event::Text(&piece)).is_break();
                }
                !cancelled
            })?;
            let rest = tidy.finish();
            if stream && !cancelled && !rest.is_empty() {
                let _ = on_event(Event::Text(&rest));
            }
            let mut written = tidy.text().to_string();
            if generation.stop == StopReason::Gated && search_again {
                search_again = false;
                if let Some(to) = language_to_try(&index, question, &retrieval)? {
                    if let Some((found, query)) =
                        search_in(to, g, &second, &mut spans, &mut record)?
                    {
                        relevant = found;
                        translation = Some(query);
                        continue;
                    }
                }
                // Declined after all: the decline held back above.
                written = no_answer_text(question).to_string();
                let _ = on_event(Event::Text(&written));
            }
            break (prompt, sources, citations, generation, written, gen_start);
        };
        let t = &generation.timings;
        spans.push(Stage::PromptProcessing, gen_start, t.prompt_ms);
        spans.push(Stage::Decoding, gen_start + t.prompt_ms, t.decode_ms);
        record.trace.timings.prompt_tokens = t.prompt_tokens;
        record.trace.timings.cached_tokens = t.cached_tokens;
        record.trace.timings.prompt_ms = t.prompt_ms;
        record.trace.timings.prompt_tokens_per_s = t.prompt_tokens_per_s();
        record.trace.timings.time_to_first_token_ms = t.first_token_ms;
        record.trace.timings.decode_tokens = t.decode_tokens;
        record.trace.timings.decode_tokens_per_s = t.decode_tokens_per_s();
        record.trace.answerable = generation.gate_yes;
        record.trace.confidence = Confidence::of(&generation.token_probs);
        let mut text = written.trim().to_string();
        let mut abstained = match (generation.stop, generation.gate_yes) {
            (StopReason::Gated, Some(answerable)) => Some(Abstention::NotAnswerable {
                answerable,
                min_answerable,
            }),
            _ if is_decline(&text) => Some(Abstention::ModelDeclined),
            // Citation marks and nothing else ("[1] [2]").
            _ if grounding::says_nothing(&text) && !text.is_empty() => {
                Some(Abstention::Unsupported)
            }
            _ => None,
        };
        // An answer that only repeats the question is asked again, and the
        // second answer taken if it says more.
        if abstained.is_none() && generation.stop != StopReason::Cancelled {
            let asked = translation.as_deref().unwrap_or(question);
            if let Some(echo) = echo::echo_of(asked, &text) {
                let start = spans.now_ms();
                let again = build_again_prompt(
                    &cfg.template,
                    g.chat_template(),
                    &history[history.len() - prompt.turns_used..],
                    asked,
                    &sources[..prompt.sources_used],
                    &echo,
                    &|text| g.tokenize_prompt(text),
                )
                .transpose()?
                // Room for a second answer as long as the first, or the
                // first stands.
                .filter(|t| t.len() + generation.tokens.len().max(1) < context);
                if let Some(tokens) = again {
                    let again_cfg = GenerationConfig {
                        max_tokens: cfg.max_tokens,
                        sampler: cfg.sampler.clone(),
                        stop_strings: g.default_stop_strings(),
                        stop_on_repeat: true,
                        gate: None,
                        not_first: echo::first_word_tokens(g.tokenizer(), &echo),
                    };
                    let mut tidy = Tidy::new();
                    g.generate(&tokens, &again_cfg, &mut |piece| {
                        tidy.push(piece);
                        true
                    })?;
                    tidy.finish();
                    let second = tidy.text().trim();
                    if echo::says_more(asked, second) && !is_decline(second) {
                        record.trace.asked_again =
                            Some(std::mem::replace(&mut text, second.to_string()));
                    }
                    spans.push(Stage::AskedAgain, start, spans.now_ms() - start);
                }
            }
        }
        let mut support = Vec::new();
        // What the model wrote, if it is declined below, and its support.
        let mut declined_text = None;
        let mut declined_support = Vec::new();
        if abstained.is_some() {
            // One sentence, whatever the model went on to say.
            declined_text = Some(std::mem::replace(
                &mut text,
                no_answer_text(question).to_string(),
            ));
        } else {
            let sources: Vec<&str> = citations.iter().map(|c| c.text.as_str()).collect();
            let min = cfg.grounding.min_support;
            let start = spans.now_ms();
            // A sentence in another language than its source is checked
            // through the encoder, again after each rewrite.
            let mut cross = index
                .meta()
                .encoder
                .retrieval
                .min_translation_similarity
                .map(CrossLanguage::new);
            let encoder = &self.encoder;
            let mut across = |support: &mut [SentenceSupport]| match cross.as_mut() {
                Some(c) => c.support(support, &sources, min, &mut |t| encoder.embed_queries(t)),
                None => Ok(()),
            };
            let mut checked = grounding::check(&text, &sources, min);
            across(&mut checked)?;
            (text, support) = grounding::correct_citations(&text, checked, &sources, min);
            across(&mut support)?;
            (text, support) = quote::quote_sources(&text, support, &sources, min);
            across(&mut support)?;
            (text, support) = statement::as_statements(
                translation.as_deref().unwrap_or(question),
                &text,
                support,
                &sources,
                min,
            );
            across(&mut support)?;
            if !support.is_empty() && support.iter().all(|s| s.best_support < min) {
                // Nothing the model wrote is in its sources: on questions
                // the documents do not answer, small models invent
                // ("a LangSmith subscription is $100 per month").
                abstained = Some(Abstention::Unsupported);
                declined_text = Some(std::mem::replace(
                    &mut text,
                    no_answer_text(question).to_string(),
                ));
                declined_support = std::mem::take(&mut support);
            } else if cfg.grounding.strict && support.iter().any(|s| !s.supported) {
                let written = std::mem::take(&mut text);
                text = grounding::supported_text(&written, &support);
                if text.is_empty() {
                    abstained = Some(Abstention::Unsupported);
                    text = no_answer_text(question).to_string();
                    declined_text = Some(written);
                    declined_support = std::mem::take(&mut support);
                }
                support = grounding::check(&text, &sources, cfg.grounding.min_support);
                across(&mut support)?;
            }
            spans.push(Stage::Grounding, start, spans.now_ms() - start);
        }
        let min_confirmed = cfg
            .min_confirmed
            .unwrap_or_else(|| crate::models::min_confirmed(&self.generator_choice.model));
        if abstained.is_none() && min_confirmed > 0.0 && generation.stop != StopReason::Cancelled {
            let start = spans.now_ms();
            let confirmed = build_confirm_prompt(
                &cfg.template,
                g.chat_template(),
                &history[history.len() - prompt.turns_used..],
                translation.as_deref().unwrap_or(question),
                &sources[..prompt.sources_used],
                &grounding::without_citations(&text),
                &|text| g.tokenize_prompt(text),
            )
            .transpose()?
            .map(|tokens| g.yes_after(&tokens))
            .transpose()?
            .flatten();
            spans.push(Stage::Confirm, start, spans.now_ms() - start);
            record.trace.confirmed = confirmed;
            if let Some(confirmed) = confirmed.filter(|&p| p < min_confirmed) {
                abstained = Some(Abstention::NotConfirmed {
                    confirmed,
                    min_confirmed,
                });
                declined_text = Some(std::mem::replace(
                    &mut text,
                    no_answer_text(question).to_string(),
                ));
                declined_support = std::mem::take(&mut support);
            }
        }
        if translation.is_some() && generation.stop != StopReason::Cancelled {
            // Written and checked in its sources' language: the user reads
            // it in the question's, with the same marks and support, each
            // sentence as soon as it is translated.
            if abstained.is_none() {
                let start = spans.now_ms();
                let to = docent_generate::prompt::question_language(question);
                let written = std::mem::take(&mut text);
                let mut show = |piece: &str| {
                    let _ = on_event(Event::Text(piece));
                };
                (text, support) =
                    translate_answer(g, &cfg.template, &written, support, to, &mut show)?;
                record.trace.translated_answer_from = Some(written);
                spans.push(Stage::Translation, start, spans.now_ms() - start);
            } else {
                // As when it streams: a withdrawn answer shows what was
                // written, a declined one the decline.
                let shown = match (&abstained, &declined_text) {
                    (Some(Abstention::Unsupported | Abstention::NotConfirmed { .. }), Some(t)) => t,
                    _ => &text,
                };
                let _ = on_event(Event::Text(shown));
            }
        }
        drop(slot);
        record.trace.declined_text = declined_text.filter(|t: &String| !t.is_empty());
        record.trace.declined_support = declined_support;
        record.trace.support = support.clone();
        let _ = on_event(Event::End {
            stop: Some(generation.stop),
            abstained: abstained.as_ref(),
        });
        Ok(record.finish(
            spans,
            text,
            abstained,
            citations,
            prompt.sources_dropped,
            Some(prompt.text),
            Some(generation.stop),
        ))
    }
}

/// The chunks of `retrieval` given to the model, all of them when the best
/// passes the threshold (`min_score`, or `min_across` for a chunk in the
/// other script than `question`) and none otherwise; with the best
/// similarity, and the best of a chunk in the other script.
fn gate(
    retrieval: &Retrieval,
    question: &str,
    min_score: f32,
    min_across: Option<f32>,
) -> (Vec<Citation>, f32, f32) {
    // The closest chunk of the whole index, whether or not the
    // fusion ranks it among the k: whether the documents hold an
    // answer does not depend on the lexical side's ranking.
    let best = retrieval
        .hits
        .iter()
        .map(|h| h.similarity)
        .chain(retrieval.candidates.iter().filter_map(|c| c.dense))
        .fold(f32::NEG_INFINITY, f32::max);
    let asked_in = crosslingual::script(question);
    let best_across = retrieval
        .hits
        .iter()
        .filter(|h| crosslingual::differ(asked_in, crosslingual::script(&h.chunk.chunk.text)))
        .map(|h| h.similarity)
        .fold(f32::NEG_INFINITY, f32::max);
    // The threshold decides whether the documents hold an answer at
    // all; when the best chunk passes it, the model gets the top k,
    // since the chunk that holds the answer is often not the one
    // most similar to the question (on the shared sets, filtering
    // each chunk by the threshold left the model without it).
    let passes = best >= min_score || min_across.is_some_and(|m| best_across >= m);
    let relevant: Vec<Citation> = if passes {
        retrieval
            .hits
            .iter()
            .enumerate()
            .map(|(i, h)| Citation::from_hit(i + 1, h))
            .collect()
    } else {
        Vec::new()
    };
    (relevant, best, best_across)
}

/// `text`, a `what` ("question", "sentence"), in `to`, by the model (the
/// template's `translate`); `None` when the template asks for no
/// translation or the reply is not one.
fn translate_text(
    g: &mut Generator,
    template: &PromptTemplate,
    text: &str,
    what: &str,
    to: &str,
) -> Result<Option<String>, RagError> {
    let Some(tokens) = build_translate_prompt(template, g.chat_template(), text, what, to, &|t| {
        g.tokenize_prompt(t)
    })
    .transpose()?
    else {
        return Ok(None);
    };
    let mut stop_strings = g.default_stop_strings();
    stop_strings.push("\n\n".to_string());
    let cfg = GenerationConfig {
        // A question or a sentence: a reply that runs on is cut to its
        // first line.
        max_tokens: 96,
        stop_strings,
        ..GenerationConfig::default()
    };
    let reply = g.generate(&tokens, &cfg, &mut |_| true)?;
    Ok(crosslingual::translated_text(&reply.text, to))
}

/// `text`, an answer written and checked in its sources' language, in the
/// language `to`, sentence by sentence: each sentence's words translated
/// by the model (left as written when it does not translate them), its
/// citation marks put back after them, and its support moved to where it
/// now stands. What lies between sentences is kept. `on_text` sees the
/// translation piece by piece, as each sentence is done.
fn translate_answer(
    g: &mut Generator,
    template: &PromptTemplate,
    text: &str,
    support: Vec<SentenceSupport>,
    to: &str,
    on_text: &mut dyn FnMut(&str),
) -> Result<(String, Vec<SentenceSupport>), RagError> {
    let in_order = support
        .iter()
        .try_fold(0, |at, s| {
            (at <= s.start && text.get(s.start..s.end).is_some()).then_some(s.end)
        })
        .is_some();
    if !in_order {
        // Not the sentences of this text, in order: left as it is.
        on_text(text);
        return Ok((text.to_string(), support));
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut moved = Vec::with_capacity(support.len());
    let mut at = 0;
    for s in &support {
        let shown = out.len();
        out.push_str(&text[at..s.start]);
        let words = grounding::without_citations(&text[s.start..s.end]);
        let words = words.trim();
        let translated = match words.is_empty() {
            true => None,
            false => translate_text(g, template, words, "sentence", to)?,
        };
        let start = out.len();
        out.push_str(translated.as_deref().unwrap_or(words));
        if !s.cites.is_empty() {
            let marks: Vec<String> = s.cites.iter().map(usize::to_string).collect();
            out.push_str(&format!(" [{}]", marks.join(", ")));
        }
        moved.push(SentenceSupport {
            text: out[start..].to_string(),
            start,
            end: out.len(),
            ..s.clone()
        });
        on_text(&out[shown..]);
        at = s.end;
    }
    let rest = &text[at..];
    out.push_str(rest);
    if !rest.is_empty() {
        on_text(rest);
    }
    Ok((out, moved))
}

/// The chunks given to the model for `query`, the question translated into
/// the other language of the documents: searched and gated as the question
/// was, and kept only when a chunk in another script than `question`'s
/// passes among them (otherwise the translation found what the question
/// had already found).
fn search_translated(
    index: &Index,
    encoder: &Encoder,
    question: &str,
    query: &str,
    cfg: &AnswerConfig,
    spans: &mut Spans,
) -> Result<Option<(Retrieval, Vec<Citation>)>, RagError> {
    let retrieval = retrieve::retrieve_with(
        index,
        encoder,
        query,
        &cfg.retrieve,
        retrieve::Coverage::BothSidesOfAComparison,
        spans,
    )?;
    let settings = index.meta().encoder.retrieval;
    let min_score = cfg.min_score.unwrap_or_else(|| settings.min_score(query));
    let min_across = settings
        .min_score_across
        .filter(|_| cfg.min_score.is_none());
    let (relevant, _, _) = gate(&retrieval, query, min_score, min_across);
    let asked_in = crosslingual::script(question);
    let found_across = relevant
        .iter()
        .any(|c| crosslingual::differ(asked_in, crosslingual::script(&c.text)));
    Ok(found_across.then_some((retrieval, relevant)))
}

/// The language to search again in when the documents in the question's
/// own do not answer it ([`QueryTranslation`]): read from the chunks the
/// dense search found near the question, which are in any language.
fn language_to_try(
    index: &Index,
    question: &str,
    retrieval: &Retrieval,
) -> Result<Option<&'static str>, RagError> {
    // The hits are read already; the other dense candidates are read here.
    let ids: Vec<u64> = retrieval
        .candidates
        .iter()
        .filter(|c| c.dense.is_some())
        .map(|c| c.chunk_id)
        .filter(|id| !retrieval.hits.iter().any(|h| h.chunk.id == *id))
        .collect();
    let chunks = index.chunks(&ids)?;
    let hits = retrieval.hits.iter().map(|h| h.chunk.chunk.text.as_str());
    Ok(crosslingual::other_language(
        question,
        hits.chain(chunks.iter().map(|c| c.chunk.text.as_str())),
    ))
}

/// What a second search needs besides the model: the index and encoder,
/// the question as asked and the answer's settings.
#[derive(Clone, Copy)]
struct SecondSearch<'a> {
    index: &'a Index,
    encoder: &'a Encoder,
    question: &'a str,
    cfg: &'a AnswerConfig,
}

/// Translates the question into `to` (or takes the translation the trace
/// already holds) and searches it ([`search_translated`]), noting both in
/// the trace: the chunks to give the model with the translation, when it
/// found some in that language.
fn search_in(
    to: &str,
    g: &mut Generator,
    second: &SecondSearch<'_>,
    spans: &mut Spans,
    record: &mut Record,
) -> Result<Option<(Vec<Citation>, String)>, RagError> {
    let SecondSearch {
        index,
        encoder,
        question,
        cfg,
    } = *second;
    let start = spans.now_ms();
    let translated = match record.trace.translated_query.clone() {
        Some(t) => Some(t),
        None => translate_text(g, &cfg.template, question, "question", to)?,
    };
    let found = match &translated {
        Some(q) => search_translated(index, encoder, question, q, cfg, spans)?,
        None => None,
    };
    spans.push(Stage::Translation, start, spans.now_ms() - start);
    record.trace.translated_query = translated.clone();
    Ok(found.zip(translated).map(|((retrieval, relevant), query)| {
        record.trace.retrieval_query = Some(query.clone());
        record.trace.candidates = retrieval.candidates;
        (relevant, query)
    }))
}

/// An answer's trace while it is being made.
struct Record {
    trace: Trace,
}

impl Record {
    /// Marks as kept exactly the candidates given to the model.
    fn keep(&mut self, used: &[Citation]) {
        for c in &mut self.trace.candidates {
            c.kept = used.iter().any(|u| u.chunk_id == c.chunk_id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        mut self,
        spans: Spans,
        text: String,
        abstained: Option<Abstention>,
        citations: Vec<Citation>,
        sources_dropped: usize,
        prompt: Option<String>,
        stop: Option<StopReason>,
    ) -> Answer {
        self.trace.timings.total_ms = spans.now_ms();
        self.trace.spans = spans.list;
        self.trace.answer = text.clone();
        self.trace.abstained = abstained.clone();
        self.trace.stop = stop;
        self.trace.sources = citations.iter().map(SourceRef::from).collect();
        Answer {
            question: self.trace.question.clone(),
            text,
            abstained,
            citations,
            sources_dropped,
            prompt,
            stop,
            support: self.trace.support.clone(),
            trace: self.trace,
        }
    }
}

// An engine is shared between threads: this fails to compile if a part of
// it stops being `Send + Sync`.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
};
