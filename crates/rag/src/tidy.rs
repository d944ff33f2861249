//! Citation marks put after what they cite, while the answer streams.
//!
//! The prompt asks the model to put the number of its source after the
//! answer ("Paris [1]"), but it labels the sources themselves with marks in
//! front ("[1] Oxygen …"), and a small model often answers the same way:
//! "[1] corporal punishment", "[1] 1964년 11월 30일 … 완성되었다." (about a
//! quarter of Qwen2.5-Coder 1.5B's SQuAD answers and half of its KorQuAD
//! ones). Read by a person, a mark in front looks like a list item, and it
//! is not where the marks of every other answer are.
//!
//! [`Tidy`] rewrites the stream as it arrives, so that the terminal, the
//! web page and the final answer all read the same text:
//!
//! * A sentence that starts a line with a mark is *labelled*: each mark in
//!   it labels the text after it, up to the next mark or the end of the
//!   sentence, and is written after that text. "[1] Classroom [2] Outside"
//!   becomes "Classroom [1] Outside [2]"; a sentence that ends with its
//!   terminator gets the mark after it, as the model's own marks go
//!   ("… 완성되었다. [1]").
//! * A mark with no text after it joins the one before: "[2] Super Bowl 50
//!   [1]" becomes "Super Bowl 50 [1, 2]".
//! * Anything else is left as written. A sentence ends where
//!   [`crate::grounding::sentences`] ends it (a line break, or `.`, `!`,
//!   `?` or `。` and any marks after it, then whitespace or the end), so a
//!   mark after a full stop belongs to the sentence before it and never
//!   starts one.
//!
//! Only what could still change is held back: a `[` until its `]`, spaces
//! until what follows them, a full stop until the character after it. No
//! IO; the grounding check runs on the tidied text.

use crate::grounding::{self, is_mark};

/// Whether `c` can end a sentence.
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。')
}

/// What a `[` at the start of some text turns out to be.
enum Bracket {
    /// A citation mark of `len` bytes citing these sources.
    Mark(Vec<usize>, usize),
    /// Text in brackets, or a lone `[`.
    Text,
    /// Cannot tell yet: the `]` has not arrived.
    Incomplete,
}

/// The mark `s` starts with, if any. The longest mark looked for is 24
/// bytes; a `[` followed by more without a `]` is text.
fn bracket(s: &str, at_end: bool) -> Bracket {
    debug_assert!(s.starts_with('['));
    match s[1..].find(']') {
        Some(close) => {
            let inside = &s[1..1 + close];
            let numbers: Vec<usize> = inside
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect();
            if is_mark(inside) && !numbers.is_empty() {
                Bracket::Mark(numbers, close + 2)
            } else {
                Bracket::Text
            }
        }
        None if !at_end && s.len() < 24 && (s.len() == 1 || is_mark(&s[1..])) => {
            Bracket::Incomplete
        }
        None => Bracket::Text,
    }
}

/// One step of [`Tidy`]: how much of the pending text it consumed (what
/// it wrote went to its output), or that it needs more text to decide.
enum Step {
    Consumed(usize),
    NeedMore,
}

/// An answer's citation marks moved after what they cite, piece by piece
/// as the model writes it (see the module's documentation).
#[derive(Debug)]
pub struct Tidy {
    /// Text received and not yet written.
    pending: String,
    /// Everything written so far.
    text: String,
    /// Whether the pending text starts a line (or the answer), where a mark
    /// makes a sentence labelled.
    line_start: bool,
    /// In a labelled sentence: the sources the text being written cites.
    labels: Vec<usize>,
    /// In a labelled sentence: whether any of its text has been written
    /// since its last mark.
    in_text: bool,
}

impl Default for Tidy {
    fn default() -> Tidy {
        Tidy {
            pending: String::new(),
            text: String::new(),
            line_start: true,
            labels: Vec::new(),
            in_text: false,
        }
    }
}

impl Tidy {
    pub fn new() -> Tidy {
        Tidy::default()
    }

    /// Takes the next piece of the answer and returns what can be written
    /// of it now.
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        self.run(false)
    }

    /// Takes the end of the answer and returns the rest of its text.
    pub fn finish(&mut self) -> String {
        let mut out = self.run(true);
        if !self.labels.is_empty() {
            // Marks with nothing after them: "[1] [2]" and nothing else,
            // or a sentence's text ending where the answer does.
            let labels = std::mem::take(&mut self.labels);
            let space = if self.in_text
                || !self.text.is_empty() && !self.text.ends_with(char::is_whitespace)
            {
                " "
            } else {
                ""
            };
            self.write(&mut out, &format!("{space}{}", format_mark(&labels)));
        }
        out
    }

    /// The answer as written so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn write(&mut self, out: &mut String, s: &str) {
        out.push_str(s);
        self.text.push_str(s);
    }

    fn run(&mut self, at_end: bool) -> String {
        let mut out = String::new();
        let mut pos = 0;
        while pos < self.pending.len() {
            let pending = std::mem::take(&mut self.pending);
            let step = self.step(&pending[pos..], at_end, &mut out);
            self.pending = pending;
            match step {
                Step::Consumed(n) => pos += n,
                Step::NeedMore => break,
            }
        }
        self.pending.drain(..pos);
        out
    }

    fn step(&mut self, s: &str, at_end: bool, out: &mut String) -> Step {
        let c = s.chars().next().expect("called with text");
        if self.labels.is_empty() {
            if !self.line_start {
                // Plain text: written as it comes, up to a line break.
                return match s.find('\n') {
                    Some(i) => {
                        self.write(out, &s[..=i]);
                        self.line_start = true;
                        Step::Consumed(i + 1)
                    }
                    None => {
                        self.write(out, s);
                        Step::Consumed(s.len())
                    }
                };
            }
            if c.is_whitespace() {
                self.write(out, &s[..c.len_utf8()]);
                return Step::Consumed(c.len_utf8());
            }
            if c == '[' {
                match bracket(s, at_end) {
                    Bracket::Incomplete => return Step::NeedMore,
                    Bracket::Mark(numbers, len) => {
                        self.labels = numbers;
                        self.in_text = false;
                        self.line_start = false;
                        return Step::Consumed(len);
                    }
                    Bracket::Text => {}
                }
            }
            self.line_start = false;
            return Step::Consumed(0);
        }
        // A labelled sentence.
        if !self.in_text {
            // Between a mark and its text: spaces and line breaks dropped,
            // further marks added.
            if c.is_whitespace() {
                return Step::Consumed(c.len_utf8());
            }
            if c == '[' {
                match bracket(s, at_end) {
                    Bracket::Incomplete => return Step::NeedMore,
                    Bracket::Mark(numbers, len) => {
                        add(&mut self.labels, &numbers);
                        return Step::Consumed(len);
                    }
                    Bracket::Text => {}
                }
            }
            self.in_text = true;
        }
        match c {
            '\n' => {
                self.end_sentence(out, &[], "");
                self.line_start = true;
                Step::Consumed(0)
            }
            ' ' | '\t' | '[' => {
                // Spaces, then perhaps marks: what comes after decides.
                let Some((marks, len)) = marks_at(s, at_end) else {
                    return Step::NeedMore;
                };
                if marks.is_empty() {
                    let spaces = s.len() - s.trim_start_matches([' ', '\t']).len();
                    if spaces == 0 {
                        // A `[` that is not a mark.
                        self.write(out, "[");
                        return Step::Consumed(1);
                    }
                    let rest = &s[spaces..];
                    if !(rest.is_empty() || rest.starts_with('\n')) {
                        self.write(out, &s[..spaces]);
                    }
                    // Spaces at a line's end go.
                    return Step::Consumed(spaces);
                }
                let rest = &s[len..];
                let after = rest.trim_start_matches([' ', '\t']);
                let gap = rest.len() - after.len();
                match after.chars().next() {
                    None | Some('\n') => {
                        self.end_sentence(out, &marks, "");
                        Step::Consumed(len + gap)
                    }
                    Some(t) if is_terminator(t) => {
                        // "Text [1]." ends with the marks after the stop,
                        // if it is a sentence's end.
                        let n = t.len_utf8();
                        match after[n..].chars().next() {
                            None if !at_end => Step::NeedMore,
                            Some(w) if !w.is_whitespace() => self.relabel(out, marks, len),
                            _ => {
                                self.end_sentence(out, &marks, &after[..n]);
                                Step::Consumed(len + gap + n)
                            }
                        }
                    }
                    Some(_) => self.relabel(out, marks, len),
                }
            }
            t if is_terminator(t) && !(t == '.' && grounding::ends_with_initial(&self.text)) => {
                let n = t.len_utf8();
                let after = &s[n..];
                let Some((marks, len)) = marks_at(after, at_end) else {
                    return Step::NeedMore;
                };
                match after[len..].chars().next() {
                    Some(w) if !w.is_whitespace() => {
                        // "3.5", ".com": not an end.
                        self.write(out, &s[..n]);
                        Step::Consumed(n)
                    }
                    _ => {
                        self.end_sentence(out, &marks, &s[..n]);
                        Step::Consumed(n + len)
                    }
                }
            }
            _ => {
                let end = s
                    .find(|c: char| c.is_whitespace() || c == '[' || is_terminator(c))
                    .unwrap_or(s.len())
                    .max(c.len_utf8());
                self.write(out, &s[..end]);
                Step::Consumed(end)
            }
        }
    }

    /// A labelled sentence's end: `terminator`, then its labels and the
    /// `marks` written after its text, as one mark.
    fn end_sentence(&mut self, out: &mut String, marks: &[usize], terminator: &str) {
        let mut labels = std::mem::take(&mut self.labels);
        add(&mut labels, marks);
        self.write(out, &format!("{terminator} {}", format_mark(&labels)));
        self.in_text = false;
    }

    /// Marks in the middle of a labelled sentence: the text before them
    /// gets its labels, and they label the text after them.
    fn relabel(&mut self, out: &mut String, marks: Vec<usize>, len: usize) -> Step {
        let labels = std::mem::replace(&mut self.labels, marks);
        self.write(out, &format!(" {} ", format_mark(&labels)));
        self.in_text = false;
        Step::Consumed(len)
    }
}

/// The marks `s` starts with, one after another with spaces before and
/// between them, and their length with those spaces (not the spaces after
/// the last); `None` if it cannot tell yet, which is while nothing but
/// spaces and marks has arrived.
fn marks_at(s: &str, at_end: bool) -> Option<(Vec<usize>, usize)> {
    let mut numbers = Vec::new();
    let mut len = 0;
    loop {
        let rest = &s[len..];
        let spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let next = &rest[spaces..];
        if next.is_empty() && !at_end {
            return None;
        }
        if !next.starts_with('[') {
            return Some((numbers, len));
        }
        match bracket(next, at_end) {
            Bracket::Incomplete => return None,
            Bracket::Text => return Some((numbers, len)),
            Bracket::Mark(found, n) => {
                add(&mut numbers, &found);
                len += spaces + n;
            }
        }
    }
}

/// `numbers` added to `to`, each once.
fn add(to: &mut Vec<usize>, numbers: &[usize]) {
    for &n in numbers {
        if !to.contains(&n) {
            to.push(n);
        }
    }
}

/// One mark citing `numbers`, in order: `[1, 2]`.
fn format_mark(numbers: &[usize]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    let list: Vec<String> = sorted.iter().map(usize::to_string).collect();
    format!("[{}]", list.join(", "))
}

/// `answer` with its citation marks after what they cite.
pub fn tidy(answer: &str) -> String {
    let mut t = Tidy::new();
    t.push(answer);
    t.finish();
    t.text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `answer` tidied in pieces cut at every byte `split` allows, and at
    /// once; the two must agree.
    fn tidied(answer: &str) -> String {
        let whole = tidy(answer);
        let mut t = Tidy::new();
        let mut streamed = String::new();
        for (i, c) in answer.char_indices() {
            streamed.push_str(&t.push(&answer[i..i + c.len_utf8()]));
        }
        streamed.push_str(&t.finish());
        assert_eq!(
            streamed, whole,
            "char by char and at once differ for {answer:?}"
        );
        assert_eq!(t.text(), whole);
        for cut in (1..answer.len()).filter(|&i| answer.is_char_boundary(i)) {
            let mut t = Tidy::new();
            let mut two = t.push(&answer[..cut]);
            two.push_str(&t.push(&answer[cut..]));
            two.push_str(&t.finish());
            assert_eq!(two, whole, "cut at {cut} differs for {answer:?}");
        }
        whole
    }

    #[test]
    fn a_mark_in_front_goes_after_the_answer() {
        assert_eq!(tidied("[1] corporal punishment"), "corporal punishment [1]");
        assert_eq!(tidied("[1] SBS"), "SBS [1]");
        assert_eq!(tidied("[2]  October 16, 2012 "), "October 16, 2012 [2]");
    }

    #[test]
    fn a_labelled_sentence_gets_its_mark_after_the_full_stop() {
        assert_eq!(
            tidied("[1] 1964년 11월 30일 1, 2차 공사가 완성되었다."),
            "1964년 11월 30일 1, 2차 공사가 완성되었다. [1]"
        );
        assert_eq!(
            tidied("[2] Luther devised the catechism. It was short, e.g. 3.5 pages."),
            "Luther devised the catechism. [2] It was short, e.g. 3.5 pages."
        );
    }

    #[test]
    fn each_mark_of_a_labelled_sentence_labels_the_text_after_it() {
        assert_eq!(
            tidied("[1] Classroom [2] Outside of the classroom"),
            "Classroom [1] Outside of the classroom [2]"
        );
        // A mark with nothing after it joins the one before.
        assert_eq!(tidied("[2] Super Bowl 50 [1]"), "Super Bowl 50 [1, 2]");
        assert_eq!(
            tidied("[2] Genesis spacecraft [1]."),
            "Genesis spacecraft. [1, 2]"
        );
        assert_eq!(tidied("[1] Foo. [2] Bar."), "Foo. [1, 2] Bar.");
        assert_eq!(tidied("[1][3] Foo"), "Foo [1, 3]");
        // A name's initial is not a sentence's end.
        assert_eq!(
            tidied("[1] Dwight D. Eisenhower"),
            "Dwight D. Eisenhower [1]"
        );
    }

    #[test]
    fn lines_are_sentences_of_their_own() {
        assert_eq!(
            tidied("[1] 대한민국 아파트의 역사\n\n동대문아파트는 1965년에 완공되었다. [1]"),
            "대한민국 아파트의 역사 [1]\n\n동대문아파트는 1965년에 완공되었다. [1]"
        );
        assert_eq!(
            tidied("Two steps:\n[1] Index the folder.\n[2] Ask."),
            "Two steps:\nIndex the folder. [1]\nAsk. [2]"
        );
        assert_eq!(tidied("[1]\n\nThe answer."), "The answer. [1]");
    }

    #[test]
    fn marks_where_they_belong_and_brackets_that_are_not_marks_stay() {
        for kept in [
            "Paris [1].",
            "Version 3.5 is out. [2] It is fast [1, 2].",
            "See [note] here. [1]",
            "[note] Paris",
            "The documents do not contain the answer to this question.",
            "Newcastle and Gateshead [2].",
            "",
        ] {
            assert_eq!(tidied(kept), kept);
        }
    }

    #[test]
    fn marks_and_nothing_else_stay_marks() {
        assert_eq!(tidied("[1] [2]"), "[1, 2]");
        assert!(crate::grounding::says_nothing(&tidied("[1] [2]")));
    }

    #[test]
    fn an_unclosed_bracket_is_text_once_the_answer_ends() {
        assert_eq!(tidied("[1"), "[1");
        assert_eq!(tidied("[1] Paris [2"), "Paris [2 [1]");
    }
}
