use std::cell::Cell;
use std::panic;
use std::sync::Once;

use docent_core::Block;

use crate::text::paragraphs;

thread_local! {
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`, turning a panic into an error and keeping the panic message
/// off the terminal: PDF parsers may panic on hostile files, and a corrupt
/// file must be a warning, not a crash.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let result = panic::catch_unwind(panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(false));
    result.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the PDF parser failed".into())
    })
}

pub(crate) enum PdfError {
    TooManyPages { pages: usize, limit: usize },
    Unreadable(String),
}

/// Text of a PDF, page after page, cut into paragraphs that remember their
/// page; lines are counted within each page. A PDF with more than
/// `max_pages` pages is refused before any page is read; a page whose text
/// cannot be extracted is left out with a warning.
pub(crate) fn load(
    bytes: &[u8],
    max_pages: usize,
) -> Result<(String, Vec<Block>, Vec<String>), PdfError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(PdfError::Unreadable(
            "the file does not start with a PDF header".into(),
        ));
    }
    let unreadable = PdfError::Unreadable;
    let mut doc = guarded(|| pdf_extract::Document::load_mem(bytes))
        .map_err(unreadable)?
        .map_err(|e| PdfError::Unreadable(e.to_string()))?;
    if doc.is_encrypted() {
        // Many PDFs are encrypted with an empty password, only to set
        // permissions; others cannot be read without theirs.
        guarded(|| doc.decrypt(""))
            .map_err(unreadable)?
            .map_err(|e| PdfError::Unreadable(format!("encrypted ({e})")))?;
    }
    let page_numbers: Vec<u32> =
        guarded(|| doc.get_pages().into_keys().collect()).map_err(PdfError::Unreadable)?;
    if page_numbers.len() > max_pages {
        return Err(PdfError::TooManyPages {
            pages: page_numbers.len(),
            limit: max_pages,
        });
    }
    let mut text = String::new();
    let mut blocks = Vec::new();
    let mut warnings = Vec::new();
    for number in page_numbers {
        let mut page = String::new();
        let extracted = guarded(|| {
            let mut out = pdf_extract::PlainTextOutput::new(&mut page);
            pdf_extract::output_doc_page(&doc, &mut out, number)
        });
        match extracted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warnings.push(format!("page {number} cannot be read ({e}); left out"));
                continue;
            }
            Err(e) => {
                warnings.push(format!("page {number} cannot be read ({e}); left out"));
                continue;
            }
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(page.trim_end());
        let page_text = &text[start..];
        for mut b in paragraphs(page_text, 0..page_text.len(), Some(number)) {
            b.range = start + b.range.start..start + b.range.end;
            blocks.push(b);
        }
    }
    Ok((text, blocks, warnings))
}
