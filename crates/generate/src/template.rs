//! Chat templates: the model's own `tokenizer.chat_template`, rendered with
//! minijinja the way Hugging Face's `apply_chat_template` renders it
//! (`trim_blocks`, `lstrip_blocks`, Python string methods, a
//! `raise_exception` function), or a plain fallback for models without one.

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::GenerateError;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// For base models with no chat template: the system text, the user text,
/// then `Answer:` for the model to continue.
pub const FALLBACK_TEMPLATE: &str = "{% for m in messages %}\
{% if m.role == 'assistant' %}Answer: {{ m.content }}\n\n\
{% else %}{{ m.content }}\n\n{% endif %}\
{% endfor %}\
{% if add_generation_prompt %}Answer:{% endif %}";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// True when the model had no template of its own.
    fallback: bool,
    bos: String,
    eos: String,
}

fn raise_exception(msg: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    /// Compiles `source` (a Jinja template), or the fallback if `None`.
    pub fn new(source: Option<&str>, bos: &str, eos: &str) -> Result<Self, GenerateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        let fallback = source.is_none();
        env.add_template_owned("chat", source.unwrap_or(FALLBACK_TEMPLATE).to_string())
            .map_err(|e| {
                GenerateError::Template(format!("the chat template does not compile: {e}"))
            })?;
        Ok(Self {
            env,
            fallback,
            bos: bos.to_string(),
            eos: eos.to_string(),
        })
    }

    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// Renders the conversation, ending with the cue for the assistant's turn
    /// when `add_generation_prompt` is set.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, GenerateError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| GenerateError::Template(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| GenerateError::Template(format!("rendering the chat template: {e}")))
    }
}
