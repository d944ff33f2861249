//! The language model's tokenizer, built from the GGUF file's own
//! `tokenizer.ggml.*` metadata so that token ids are the ones llama.cpp gives
//! for the same file.
//!
//! Two families are supported:
//!
//! * **SentencePiece-style** (`tokenizer.ggml.model = "llama"`, Llama 2,
//!   Gemma): spaces become `▁`, the text is split into characters and the
//!   adjacent pair whose concatenation is the highest-scoring vocabulary entry
//!   is merged first (ties to the left), until nothing merges; what is left
//!   out of the vocabulary falls back to `<0xNN>` byte tokens. This loop is
//!   written here, because llama.cpp's score-ordered merging is not the
//!   rank-ordered BPE that the `tokenizers` crate implements.
//! * **byte-level BPE** (`"gpt2"`, SmolLM2, Llama 3, Qwen 2): the text is
//!   pre-split by the regular expressions llama.cpp uses for the file's
//!   `tokenizer.ggml.pre`, mapped to GPT-2's byte alphabet and merged by rank.
//!   This runs through the `tokenizers` crate's BPE model.
//!
//! Before either, the text is partitioned around special tokens exactly as
//! llama.cpp does: user-defined tokens are always matched literally; control
//! tokens (`<|im_start|>`, `<start_of_turn>`) only when the caller asks for
//! special tokens to be parsed, which docent does for the chat template's
//! output and never for document text.

use std::collections::HashMap;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::gguf::GgufFile;
use crate::GenerateError;

/// What a vocabulary entry is, from `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(t: i32) -> Self {
        match t {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

enum Family {
    Spm { scores: Vec<f32> },
    Bpe { inner: Box<tokenizers::Tokenizer> },
}

/// Token texts that end generation whatever type the file gives them;
/// llama.cpp treats the same texts as control tokens, which also means they
/// are not matched in plain text.
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
];

/// A tokenizer read from GGUF metadata.
pub struct GgufTokenizer {
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    token_to_id: HashMap<String, u32>,
    family: Family,
    /// Tokens matched literally before tokenization, longest first.
    specials: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    end_of_generation: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    byte_decoder: HashMap<char, u8>,
}

/// Which regular expressions split text before BPE, from llama.cpp's table
/// of `tokenizer.ggml.pre` names.
fn pre_tokenizer(pre: &str) -> Option<(Vec<&'static str>, bool)> {
    // (custom regexes before the byte-level step, ignore_merges)
    const GPT2: &[&str] = &[];
    let digits_then_gpt2 = vec![r"\p{N}"];
    let llama3 = vec![
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ];
    let qwen2 = vec![
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ];
    Some(match pre {
        "default" | "gpt2" | "gpt-2" => (GPT2.to_vec(), false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (digits_then_gpt2, false)
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (llama3, true),
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" => (qwen2, false),
        _ => return None,
    })
}

/// GPT-2's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut out = Vec::with_capacity(256);
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).expect("valid code point");
            n += 1;
            c
        };
        out.push((b, c));
    }
    out
}

impl GgufTokenizer {
    /// Builds the tokenizer from the file's metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, GenerateError> {
        let unsupported = |reason: String| GenerateError::UnsupportedTokenizer {
            path: file.path().to_path_buf(),
            reason,
        };
        let model = file.string("tokenizer.ggml.model")?;
        let tokens = file.strings("tokenizer.ggml.tokens")?;
        let n = tokens.len();
        let mut kinds: Vec<TokenKind> = match file.opt_i32s("tokenizer.ggml.token_type")? {
            Some(t) if t.len() == n => t.into_iter().map(TokenKind::from_gguf).collect(),
            Some(_) => return Err(unsupported("token_type and tokens differ in length".into())),
            None => vec![TokenKind::Normal; n],
        };
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            token_to_id.insert(t.clone(), i as u32);
        }
        let family = match model.as_str() {
            "llama" => {
                let scores = match file.opt_f32s("tokenizer.ggml.scores")? {
                    Some(s) if s.len() == n => s,
                    _ => {
                        return Err(unsupported(
                            "a SentencePiece vocabulary needs scores".into(),
                        ))
                    }
                };
                Family::Spm { scores }
            }
            "gpt2" => {
                let pre = file
                    .opt_string("tokenizer.ggml.pre")
                    .unwrap_or_else(|| "default".into());
                let Some((regexes, ignore_merges)) = pre_tokenizer(&pre) else {
                    return Err(unsupported(format!(
                        "the BPE pre-tokenizer {pre:?} is not one docent knows \
                         (default, gpt2, smollm, starcoder, llama3, llama-bpe, qwen2)"
                    )));
                };
                let merges = file
                    .strings("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| match m.split_once(' ') {
                        Some((a, b)) => Ok((a.to_string(), b.to_string())),
                        None => Err(unsupported(format!("malformed merge {m:?}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let bpe = BPE::builder()
                    .vocab_and_merges(
                        token_to_id
                            .iter()
                            .map(|(k, v)| (k.clone(), *v))
                            .collect::<tokenizers::models::bpe::Vocab>(),
                        merges,
                    )
                    .ignore_merges(ignore_merges)
                    .build()
                    .map_err(|e| unsupported(format!("BPE vocabulary: {e}")))?;
                let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
                for r in &regexes {
                    let split = Split::new(
                        SplitPattern::Regex((*r).to_string()),
                        SplitDelimiterBehavior::Isolated,
                        false,
                    )
                    .map_err(|e| unsupported(format!("pre-tokenizer regex: {e}")))?;
                    steps.push(split.into());
                }
                let gpt2_regex = regexes.is_empty() || regexes == [r"\p{N}"];
                steps.push(ByteLevel::new(false, false, gpt2_regex).into());
                let mut inner = tokenizers::Tokenizer::new(bpe);
                inner.with_pre_tokenizer(Some(Sequence::new(steps)));
                Family::Bpe {
                    inner: Box::new(inner),
                }
            }
            other => {
                return Err(unsupported(format!(
                    "tokenizer.ggml.model {other:?} is not supported (supported: llama, gpt2)"
                )))
            }
        };
        let id = |key: &str| -> Result<Option<u32>, GenerateError> {
            Ok(file.opt_usize(key)?.filter(|&i| i < n).map(|i| i as u32))
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let mut end_of_generation: Vec<u32> = Vec::new();
        for key in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            end_of_generation.extend(id(key)?);
        }
        for (i, t) in tokens.iter().enumerate() {
            if END_OF_GENERATION_TEXTS.contains(&t.as_str()) {
                kinds[i] = TokenKind::Control;
                end_of_generation.push(i as u32);
            }
        }
        end_of_generation.sort_unstable();
        end_of_generation.dedup();
        let is_spm = matches!(family, Family::Spm { .. });
        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    kinds[i as usize],
                    TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                ) && !tokens[i as usize].is_empty()
            })
            .collect();
        specials.sort_by_key(|&i| std::cmp::Reverse(tokens[i as usize].len()));
        Ok(Self {
            add_bos: file
                .opt_bool("tokenizer.ggml.add_bos_token")
                .unwrap_or(is_spm),
            add_eos: file
                .opt_bool("tokenizer.ggml.add_eos_token")
                .unwrap_or(false),
            add_space_prefix: file
                .opt_bool("tokenizer.ggml.add_space_prefix")
                .unwrap_or(is_spm),
            tokens,
            kinds,
            token_to_id,
            family,
            specials,
            bos,
            eos,
            end_of_generation,
            byte_decoder: bytes_to_unicode()
                .into_iter()
                .map(|(b, c)| (c, b))
                .collect(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Does the model expect a BOS token at the start of a prompt?
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// The text of a vocabulary entry, as stored.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// Tokens after which generation stops: EOS, end-of-turn and the like.
    pub fn end_of_generation(&self) -> &[u32] {
        &self.end_of_generation
    }

    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.binary_search(&id).is_ok()
    }

    /// Tokenizes `text`. `add_special` adds BOS/EOS as the model's metadata
    /// asks; `parse_special` lets control tokens written in the text (such as
    /// `<|im_start|>`) become those tokens.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.family {
            Family::Spm { scores } => {
                let mut prev_special = true;
                for f in fragments {
                    match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(t) => {
                            let mut s = String::with_capacity(t.len() + 3);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(t);
                            let s = s.replace(' ', "\u{2581}");
                            self.spm_encode(&s, scores, &mut out);
                            prev_special = false;
                        }
                    }
                }
            }
            Family::Bpe { inner } => {
                for f in fragments {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => {
                            // The BPE model has no normaliser and no added
                            // tokens, so it cannot fail on any string.
                            if let Ok(enc) = inner.encode(t, false) {
                                out.extend_from_slice(enc.get_ids());
                            }
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Number of tokens `text` takes (no special tokens added).
    pub fn count(&self, text: &str) -> usize {
        self.encode(text, false, false).len()
    }

    /// Splits `text` around special tokens, longest token first, as
    /// llama.cpp's `tokenizer_st_partition` does.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut frags = vec![Fragment::Text(text)];
        if text.is_empty() {
            return Vec::new();
        }
        for &id in &self.specials {
            let kind = self.kinds[id as usize];
            if !parse_special && matches!(kind, TokenKind::Control | TokenKind::Unknown) {
                continue;
            }
            let needle = self.tokens[id as usize].as_str();
            if !frags
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Fragment::Text(mut t) => {
                        while let Some(at) = t.find(needle) {
                            if at > 0 {
                                next.push(Fragment::Text(&t[..at]));
                            }
                            next.push(Fragment::Token(id));
                            t = &t[at + needle.len()..];
                        }
                        if !t.is_empty() {
                            next.push(Fragment::Text(t));
                        }
                    }
                    tok => next.push(tok),
                }
            }
            frags = next;
        }
        frags
    }

    fn spm_encode(&self, text: &str, scores: &[f32], out: &mut Vec<u32>) {
        use std::collections::BinaryHeap;
        if text.is_empty() {
            return;
        }
        struct Bigram {
            left: usize,
            right: usize,
            score: f32,
            size: usize,
        }
        impl PartialEq for Bigram {
            fn eq(&self, o: &Self) -> bool {
                self.cmp(o) == std::cmp::Ordering::Equal
            }
        }
        impl Eq for Bigram {}
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Bigram {
            // Highest score first; among equals, the leftmost.
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.score
                    .total_cmp(&o.score)
                    .then_with(|| o.left.cmp(&self.left))
            }
        }
        let bytes = text.as_bytes();
        let mut syms: Vec<Sym> = Vec::new();
        for (i, (start, c)) in text.char_indices().enumerate() {
            let len = c.len_utf8();
            syms.push(Sym {
                start,
                len,
                prev: i as isize - 1,
                next: if start + len == bytes.len() {
                    -1
                } else {
                    i as isize + 1
                },
            });
        }
        let mut heap = BinaryHeap::new();
        let mut rev_merge: HashMap<&str, (usize, usize)> = HashMap::new();
        #[allow(clippy::too_many_arguments)]
        fn try_add<'t>(
            vocab: &HashMap<String, u32>,
            scores: &[f32],
            text: &'t str,
            left: isize,
            right: isize,
            syms: &[Sym],
            heap: &mut BinaryHeap<Bigram>,
            rev: &mut HashMap<&'t str, (usize, usize)>,
        ) {
            if left < 0 || right < 0 {
                return;
            }
            let (l, r) = (syms[left as usize], syms[right as usize]);
            let piece = &text[l.start..l.start + l.len + r.len];
            if let Some(&id) = vocab.get(piece) {
                heap.push(Bigram {
                    left: left as usize,
                    right: right as usize,
                    score: scores[id as usize],
                    size: piece.len(),
                });
                rev.insert(piece, (left as usize, right as usize));
            }
        }
        let vocab = &self.token_to_id;
        for i in 1..syms.len() {
            try_add(
                vocab,
                scores,
                text,
                i as isize - 1,
                i as isize,
                &syms,
                &mut heap,
                &mut rev_merge,
            );
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (syms[b.left], syms[b.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
                continue;
            }
            syms[b.left].len += r.len;
            syms[b.right].len = 0;
            syms[b.left].next = r.next;
            if r.next >= 0 {
                syms[r.next as usize].prev = b.left as isize;
            }
            let prev = syms[b.left].prev;
            let next = syms[b.left].next;
            try_add(
                vocab,
                scores,
                text,
                prev,
                b.left as isize,
                &syms,
                &mut heap,
                &mut rev_merge,
            );
            try_add(
                vocab,
                scores,
                text,
                b.left as isize,
                next,
                &syms,
                &mut heap,
                &mut rev_merge,
            );
        }
        let mut i: isize = 0;
        while i != -1 {
            let s = syms[i as usize];
            self.resegment(text, &syms, s.start, s.len, &rev_merge, out);
            i = s.next;
        }
    }

    fn resegment(
        &self,
        text: &str,
        syms: &[Sym],
        start: usize,
        len: usize,
        rev: &HashMap<&str, (usize, usize)>,
        out: &mut Vec<u32>,
    ) {
        let piece = &text[start..start + len];
        if let Some(&id) = self.token_to_id.get(piece) {
            out.push(id);
            return;
        }
        if let Some(&(l, r)) = rev.get(piece) {
            self.resegment(text, syms, syms[l].start, syms[l].len, rev, out);
            self.resegment(text, syms, syms[r].start, syms[r].len, rev, out);
            return;
        }
        for &b in piece.as_bytes() {
            let name = format!("<0x{b:02X}>");
            if let Some(&id) = self.token_to_id.get(&name) {
                out.push(id);
            } else if let Some(&id) = self
                .token_to_id
                .get(std::str::from_utf8(&[b]).unwrap_or("\u{fffd}"))
            {
                out.push(id);
            }
        }
    }

    /// The bytes a token stands for when printed: `▁` becomes a space,
    /// byte tokens their byte, byte-level BPE characters their bytes.
    /// Control tokens print as nothing.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        let kind = self.kinds[id as usize];
        match &self.family {
            Family::Spm { .. } => match kind {
                TokenKind::Normal => text.replace('\u{2581}', " ").into_bytes(),
                TokenKind::UserDefined => text.clone().into_bytes(),
                TokenKind::Byte => {
                    let hex = text.trim_start_matches("<0x").trim_end_matches('>');
                    u8::from_str_radix(hex, 16)
                        .map(|b| vec![b])
                        .unwrap_or_default()
                }
                TokenKind::Unknown => "\u{2585}".as_bytes().to_vec(),
                _ => Vec::new(),
            },
            Family::Bpe { .. } => match kind {
                TokenKind::Normal | TokenKind::UserDefined => text
                    .chars()
                    .flat_map(|c| match self.byte_decoder.get(&c) {
                        Some(&b) => vec![b],
                        None => c.to_string().into_bytes(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    /// Decodes a whole sequence of ids to text.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.token_bytes(i)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A run of the text during SentencePiece merging; `len == 0` once merged
/// into its left neighbour.
#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// Turns a stream of token ids into text, holding back the bytes of a
/// character split across tokens until it is complete.
#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    pub fn push(&mut self, tokenizer: &GgufTokenizer, id: u32) -> String {
        self.pending.extend(tokenizer.token_bytes(id));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        Some(bad) => {
                            out.push('\u{fffd}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
        out
    }

    /// Whatever is still held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
