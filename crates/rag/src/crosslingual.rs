//! Support across languages: an answer sentence checked against a source
//! written in another script, through the multilingual encoder.
//!
//! The grounding check ([`crate::grounding`]) counts the words (and Hangul
//! syllable pairs) a sentence shares with its sources. A Korean question
//! over English documents gets a Korean answer whose words are in no
//! source, so every sentence came out unsupported and the answer was
//! declined: "LangServe와 LangSmith의 차이는 무엇인가요?" over `corpus/`
//! read the two English glossary entries, answered in Korean, and was
//! withdrawn as "nothing in the answer is in the sources".
//!
//! Here a sentence the words leave unsupported, written in Hangul where a
//! source is in Latin script or the other way round, is embedded with the
//! sentences of that source; its support from the source becomes its
//! cosine to the closest of them when that reaches the encoder's
//! `min_translation_similarity` and every number the sentence states is in
//! the source (numbers survive translation; a cosine does not tell 100
//! from 1,000). multilingual-e5-small puts a glossary sentence and its
//! translation at 0.89 (median) and the closest sentence of another entry
//! at 0.84 (`benches/cross_language.rs`); its threshold is 0.86. Encoders
//! without one (all-MiniLM-L6-v2, English only) leave support to the words.
//!
//! It also says when a question crosses the two languages, for the engine's
//! translation ([`crate::answer::QueryTranslation`]): the language to search
//! again in when the index holds it ([`other_language`]), the language to
//! read the sources in when all of them are in it ([`sources_language`]),
//! and the translation a model's reply holds ([`translated_text`]). The
//! encoder's check above remains for a sentence whose sources mix the two
//! languages, or with `--translate off`.
//!
//! No IO: the caller hands in the embedding function.

use std::collections::{HashMap, HashSet};

use crate::grounding::{self, SentenceSupport};

/// The script most of a text's letters are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Hangul,
    Latin,
    /// Neither, or no letters.
    Other,
}

/// The script of `text`: Hangul when Hangul syllables are at least a
/// quarter of its letters, so that a Korean sentence full of English names
/// ("LangServe는 LangChain chains를 REST API로 서비스합니다") is Korean.
pub fn script(text: &str) -> Script {
    let (mut hangul, mut latin) = (0usize, 0usize);
    for c in text.chars() {
        if grounding::is_hangul(c) {
            hangul += 1;
        } else if c.is_ascii_alphabetic() {
            latin += 1;
        }
    }
    if hangul > 0 && hangul * 4 >= hangul + latin {
        Script::Hangul
    } else if latin > 0 {
        Script::Latin
    } else {
        Script::Other
    }
}

/// Whether texts in `a` and in `b` are in two languages (Hangul and Latin
/// script).
pub fn differ(a: Script, b: Script) -> bool {
    a != b && a != Script::Other && b != Script::Other
}

/// A question's script and the other of docent's two languages.
fn across(question: &str) -> Option<(Script, &'static str)> {
    match script(question) {
        Script::Hangul => Some((Script::Hangul, "English")),
        Script::Latin => Some((Script::Latin, "Korean")),
        Script::Other => None,
    }
}

/// The language a question is translated into for a second search: English
/// for a Korean question and Korean for an English one, when one of `texts`
/// (chunks found near the question) is written in that language's script;
/// `None` for a question in neither script or an index in one language.
pub fn other_language<'a>(
    question: &str,
    texts: impl IntoIterator<Item = &'a str>,
) -> Option<&'static str> {
    let (asked, to) = across(question)?;
    texts
        .into_iter()
        .any(|t| differ(asked, script(t)))
        .then_some(to)
}

/// The language a question is read in when every one of `texts` (the
/// sources it is answered from) is written in the other script than the
/// question: English for a Korean question, Korean for an English one;
/// `None` when any source is in the question's script, or there is none.
pub fn sources_language<'a>(
    question: &str,
    texts: impl IntoIterator<Item = &'a str>,
) -> Option<&'static str> {
    let (asked, to) = across(question)?;
    let mut texts = texts.into_iter().peekable();
    texts.peek()?;
    texts.all(|t| differ(asked, script(t))).then_some(to)
}

/// The translation a model's `reply` holds: its first non-empty line,
/// without a label ("Translation:") or the quotes around it; `None` when
/// that is not written in the script of `to` (the model answered, refused
/// or repeated the text instead of translating it).
pub fn translated_text(reply: &str, to: &str) -> Option<String> {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty())?;
    const LABELS: &[&str] = &[
        "translation",
        "translated question",
        "english",
        "korean",
        "question",
        "번역",
        "영어",
        "한국어",
        "질문",
    ];
    let line = match line.split_once(':') {
        Some((label, rest))
            if LABELS.contains(&label.trim().to_lowercase().as_str())
                && !rest.trim().is_empty() =>
        {
            rest.trim()
        }
        _ => line,
    };
    let line = line
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '“' | '”' | '「' | '」' | '`'))
        .trim();
    let want = match to {
        "Korean" => Script::Hangul,
        _ => Script::Latin,
    };
    (!line.is_empty() && script(line) == want).then(|| line.to_string())
}

/// One vector per text, in order, or the encoder's error.
pub type Embedded<E> = Result<Vec<Vec<f32>>, E>;

/// The cross-language support of one answer: the threshold, and every
/// text embedded so far, so that checking the answer again after its
/// citations are corrected embeds nothing twice.
#[derive(Debug)]
pub struct CrossLanguage {
    min_similarity: f32,
    vectors: HashMap<String, Vec<f32>>,
}

impl CrossLanguage {
    /// `min_similarity` is the encoder's
    /// [`docent_core::RetrievalSettings::min_translation_similarity`].
    pub fn new(min_similarity: f32) -> CrossLanguage {
        CrossLanguage {
            min_similarity,
            vectors: HashMap::new(),
        }
    }

    /// Raises the support of each unsupported sentence of `support` (the
    /// grounding check's result against `sources`) whose sources are in
    /// another script and that no source holds in its words, as the
    /// module's documentation says, and records its
    /// best cosine in [`SentenceSupport::similarity`]. `embed` embeds texts
    /// as the encoder embeds questions; it is called at most once, with the
    /// texts not embedded before, and not at all when no sentence needs it.
    pub fn support<E>(
        &mut self,
        support: &mut [SentenceSupport],
        sources: &[&str],
        min_support: f32,
        embed: &mut dyn FnMut(&[&str]) -> Embedded<E>,
    ) -> Result<(), E> {
        let scripts: Vec<Script> = sources.iter().map(|s| script(s)).collect();
        // Sentences to look at, and the sources in another script for each.
        // A sentence another source holds in its own words is left to the
        // words: its citation is pointed there
        // ([`grounding::correct_citations`]), which a cosine to the cited
        // source, a weaker sign, would keep from happening.
        let wanted: Vec<(usize, String, Vec<usize>)> = support
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.supported && s.best_support < min_support)
            .filter_map(|(i, s)| {
                let text = grounding::without_citations(&s.text);
                let own = script(&text);
                let others: Vec<usize> = (1..=sources.len())
                    .filter(|&n| differ(own, scripts[n - 1]))
                    .collect();
                (!others.is_empty()).then_some((i, text, others))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let needed: HashSet<usize> = wanted.iter().flat_map(|(_, _, ns)| ns.clone()).collect();
        let source_sentences: Vec<Vec<String>> = sources
            .iter()
            .enumerate()
            .map(|(i, source)| {
                if !needed.contains(&(i + 1)) {
                    return Vec::new();
                }
                grounding::sentences(source)
                    .into_iter()
                    .map(|(s, e)| {
                        source[s..e]
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .filter(|t| t.chars().count() >= 8)
                    .collect()
            })
            .collect();
        // One batch of what has not been embedded yet.
        let mut missing: Vec<&str> = wanted
            .iter()
            .map(|(_, text, _)| text.as_str())
            .chain(source_sentences.iter().flatten().map(String::as_str))
            .filter(|t| !self.vectors.contains_key(*t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            for (text, v) in missing.iter().zip(embed(&missing)?) {
                self.vectors.insert(text.to_string(), v);
            }
        }
        // Each needed source's words, read once for every sentence.
        let source_units: Vec<HashSet<String>> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if needed.contains(&(i + 1)) {
                    grounding::units(s)
                } else {
                    HashSet::new()
                }
            })
            .collect();
        for (i, text, others) in &wanted {
            let s = &mut support[*i];
            let own = &self.vectors[text];
            let numbers: Vec<String> = grounding::units(text)
                .into_iter()
                .filter(|u| u.chars().any(|c| c.is_ascii_digit()))
                .collect();
            let mut closest = 0f32;
            for &n in others {
                let sim = source_sentences[n - 1]
                    .iter()
                    .map(|t| cosine(own, &self.vectors[t]))
                    .fold(0f32, f32::max);
                let checked = s.cites.is_empty() || s.cites.contains(&n);
                if checked {
                    closest = closest.max(sim);
                }
                let units = &source_units[n - 1];
                if sim < self.min_similarity || !numbers.iter().all(|u| units.contains(u)) {
                    continue;
                }
                if sim > s.best_support {
                    s.best_support = sim;
                    s.best_source = Some(n);
                    s.best_sources = vec![n];
                }
                if checked && sim > s.support {
                    s.support = sim;
                }
            }
            s.similarity = Some(closest);
            s.supported = s.support >= min_support;
        }
        Ok(())
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let d = norm(a) * norm(b);
    if d > 0.0 {
        dot / d
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grounding::{check, correct_citations};

    const EN: &str = "LangServe deploys LangChain chains as a REST API. It builds on FastAPI.";
    const KO: &str = "랭서브는 랭체인 체인을 REST API로 배포합니다. FastAPI 위에서 동작합니다.";

    #[test]
    fn the_other_language_is_one_the_index_holds() {
        assert_eq!(
            other_language("벡터 스토어는 무엇인가요?", [KO, EN]),
            Some("English")
        );
        assert_eq!(
            other_language("What is a vector store?", [EN, KO]),
            Some("Korean")
        );
        // An index in the question's language only, or a question in neither.
        assert_eq!(other_language("벡터 스토어는 무엇인가요?", [KO]), None);
        assert_eq!(other_language("What is a vector store?", [EN, EN]), None);
        assert_eq!(other_language("2 + 2?", [EN, KO]), None);
    }

    #[test]
    fn sources_all_in_the_other_language_are_read_in_it() {
        assert_eq!(
            sources_language("벡터 스토어는?", [EN, EN]),
            Some("English")
        );
        assert_eq!(sources_language("What is LangServe?", [KO]), Some("Korean"));
        assert_eq!(sources_language("벡터 스토어는?", [EN, KO]), None);
        assert_eq!(sources_language("벡터 스토어는?", []), None);
        assert_eq!(sources_language("2 + 2?", [EN]), None);
    }

    #[test]
    fn a_translation_is_its_first_line_in_the_script_asked_for() {
        let t = |reply| translated_text(reply, "English");
        assert_eq!(
            t("Which integrations do vector stores support?").as_deref(),
            Some("Which integrations do vector stores support?")
        );
        assert_eq!(
            t("Translation: \"What operator does LCEL use?\"\n\nLCEL uses |.").as_deref(),
            Some("What operator does LCEL use?")
        );
        // A colon that is part of the question stays.
        assert_eq!(
            t("LCEL: which operator joins steps?").as_deref(),
            Some("LCEL: which operator joins steps?")
        );
        // Not translated: the question again, or nothing.
        assert_eq!(t("벡터 스토어는 어떤 통합을 지원하나요?"), None);
        assert_eq!(t("  \n "), None);
        assert_eq!(
            translated_text("벡터 스토어는 무엇인가요?", "Korean").as_deref(),
            Some("벡터 스토어는 무엇인가요?")
        );
    }

    #[test]
    fn scripts_are_read_by_their_letters() {
        assert_eq!(script(EN), Script::Latin);
        assert_eq!(script(KO), Script::Hangul);
        assert_eq!(
            script("LangServe는 FastAPI 위에서 동작합니다"),
            Script::Hangul
        );
        assert_eq!(script("2024 [1]"), Script::Other);
    }

    /// A stand-in encoder: texts about LangServe point one way, about
    /// FastAPI another, everything else a third, so the test controls the
    /// cosines.
    fn embed(texts: &[&str]) -> Result<Vec<Vec<f32>>, ()> {
        Ok(texts
            .iter()
            .map(|t| {
                if t.contains("LangServe") || t.contains("랭서브") {
                    vec![1.0, 0.1, 0.0]
                } else if t.contains("FastAPI") {
                    vec![0.0, 1.0, 0.0]
                } else {
                    vec![0.0, 0.0, 1.0]
                }
            })
            .collect())
    }

    #[test]
    fn a_translated_sentence_is_supported_and_one_on_another_subject_is_not() {
        let answer = "랭서브는 체인을 REST API로 배포합니다. [1] 랭스미스는 실행을 기록합니다. [1]";
        let mut support = check(answer, &[EN], 0.5);
        assert!(support.iter().all(|s| !s.supported), "{support:?}");
        let mut calls = 0;
        let mut cross = CrossLanguage::new(0.86);
        cross
            .support(&mut support, &[EN], 0.5, &mut |t| {
                calls += 1;
                embed(t)
            })
            .unwrap();
        assert_eq!(calls, 1, "one batch");
        assert!(
            support[0].supported && support[0].support > 0.99,
            "{:?}",
            support[0]
        );
        assert_eq!(support[0].best_source, Some(1));
        assert!(!support[1].supported && support[1].similarity.unwrap() < 0.86);
    }

    #[test]
    fn a_number_the_source_does_not_state_is_not_supported_by_similarity() {
        let answer = "랭서브는 2019년에 REST API로 배포합니다. [1]";
        let mut support = check(answer, &[EN], 0.5);
        CrossLanguage::new(0.86)
            .support(&mut support, &[EN], 0.5, &mut embed)
            .unwrap();
        assert!(!support[0].supported);
        assert!(support[0].similarity.unwrap() > 0.99);
    }

    #[test]
    fn sentences_in_their_sources_language_are_left_to_the_words() {
        let answer = "랭서브는 체인을 REST API로 배포합니다. [1]";
        let mut support = check(answer, &[KO], 0.5);
        let before = support.clone();
        CrossLanguage::new(0.86)
            .support(&mut support, &[KO], 0.5, &mut |_| -> Result<_, ()> {
                panic!("nothing to embed")
            })
            .unwrap();
        assert_eq!(support, before);
    }

    /// "rag-chroma 템플릿은 retrieval-augmented generation over a Chroma
    /// vector store입니다. [1]" cited the Korean glossary, 0.88 from the
    /// sentence by the encoder, where [2] says it word for word: the words
    /// win, and the citation goes to [2].
    #[test]
    fn a_sentence_another_source_holds_in_its_words_is_cited_there() {
        let answer = "LangServe deploys LangChain chains as a REST API. [1]";
        let mut support = check(answer, &[KO, EN], 0.5);
        assert!(!support[0].supported && support[0].best_source == Some(2));
        let mut cross = CrossLanguage::new(0.86);
        cross
            .support(&mut support, &[KO, EN], 0.5, &mut |_| -> Result<_, ()> {
                panic!("the words decide")
            })
            .unwrap();
        assert!(!support[0].supported && support[0].similarity.is_none());
        let (text, support) = correct_citations(answer, support, &[KO, EN], 0.5);
        assert_eq!(
            text,
            "LangServe deploys LangChain chains as a REST API. [2]"
        );
        assert!(support[0].supported, "{support:?}");
        // With only the Korean source, the encoder is asked, and supports it.
        let mut alone = check(answer, &[KO], 0.5);
        cross.support(&mut alone, &[KO], 0.5, &mut embed).unwrap();
        assert!(alone[0].supported, "{alone:?}");
    }

    #[test]
    fn only_the_cited_source_can_support_but_any_can_be_the_best() {
        let other = "Quantization stores weights in fewer bits.";
        let answer = "랭서브는 체인을 REST API로 배포합니다. [1]";
        let mut support = check(answer, &[other, EN], 0.5);
        let mut cross = CrossLanguage::new(0.86);
        cross
            .support(&mut support, &[other, EN], 0.5, &mut embed)
            .unwrap();
        assert!(!support[0].supported);
        assert_eq!(support[0].best_source, Some(2));
        assert!(support[0].best_support > 0.99);
        // The citation is corrected as a miscited sentence's is, and the
        // corrected sentence, checked again, is supported without
        // embedding anything again.
        let (text, mut support) = correct_citations(answer, support, &[other, EN], 0.5);
        assert_eq!(text, "랭서브는 체인을 REST API로 배포합니다. [2]");
        assert_eq!(support[0].model_cites, vec![1]);
        cross
            .support(&mut support, &[other, EN], 0.5, &mut |_| -> Result<_, ()> {
                panic!("embedded before")
            })
            .unwrap();
        assert!(support[0].supported, "{support:?}");
    }
}
