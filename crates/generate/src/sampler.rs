//! Choosing the next token from the logits.

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::GenerateError;

/// How the next token is chosen. A temperature of 0 is greedy decoding
/// (always the most likely token), which the defaults use: grounded answers
/// should quote their sources, not improvise.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplerConfig {
    pub temperature: f64,
    /// Keep only the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probabilities reach p (1 = all).
    pub top_p: f64,
    /// Divide positive (multiply negative) logits of recent tokens by this;
    /// 1.0 turns it off.
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            // A penalty on recent tokens keeps a model from copying the
            // words of its sources and question, which a grounded answer
            // must do: Qwen2.5-Coder 1.5B wrote "98.4" for a source's
            // "99.4". Answers that start over are stopped instead
            // (`GenerationConfig::stop_on_repeat`). 1.0 against 1.1 on
            // 40 SQuAD questions: answer accuracy 0.55 → 0.60, F1 0.38 →
            // 0.45.
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 299_792_458,
        }
    }
}

impl SamplerConfig {
    /// Plain greedy decoding with no penalty: what llama.cpp's reference
    /// fixtures use.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            repeat_penalty: 1.0,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |m: &str| Err(GenerateError::Config(m.to_string()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be 0 or more");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top-p must be in (0, 1]");
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad("repeat penalty must be positive");
        }
        Ok(())
    }
}

pub struct Sampler {
    cfg: SamplerConfig,
    inner: LogitsProcessor,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        let sampling = if cfg.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            let temperature = cfg.temperature;
            match (cfg.top_k > 0, cfg.top_p < 1.0) {
                (true, true) => Sampling::TopKThenTopP {
                    k: cfg.top_k,
                    p: cfg.top_p,
                    temperature,
                },
                (true, false) => Sampling::TopK {
                    k: cfg.top_k,
                    temperature,
                },
                (false, true) => Sampling::TopP {
                    p: cfg.top_p,
                    temperature,
                },
                (false, false) => Sampling::All { temperature },
            }
        };
        Self {
            inner: LogitsProcessor::from_sampling(cfg.seed, sampling),
            cfg,
        }
    }

    /// Picks the next token given the logits and the tokens so far.
    pub fn sample(&mut self, logits: Vec<f32>, history: &[u32]) -> Result<u32, GenerateError> {
        let n = logits.len();
        let mut logits = Tensor::from_vec(logits, n, &Device::Cpu)?;
        if self.cfg.repeat_penalty != 1.0 && !history.is_empty() {
            let from = history.len().saturating_sub(self.cfg.repeat_last_n);
            logits = candle_transformers::utils::apply_repeat_penalty(
                &logits,
                self.cfg.repeat_penalty,
                &history[from..],
            )?;
        }
        Ok(self.inner.sample(&logits)?)
    }
}
