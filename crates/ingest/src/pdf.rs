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

/// Text of a PDF, page after page, cut into paragraphs that remember their
/// page; lines are counted within each page.
pub(crate) fn load(bytes: &[u8]) -> Result<(String, Vec<Block>), String> {
    if !bytes.starts_with(b"%PDF-") {
        return Err("the file does not start with a PDF header".into());
    }
    let pages = guarded(|| pdf_extract::extract_text_from_mem_by_pages(bytes))?
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut blocks = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(page.trim_end());
        let page_text = &text[start..];
        for mut b in paragraphs(page_text, 0..page_text.len(), Some(i as u32 + 1)) {
            b.range = start + b.range.start..start + b.range.end;
            blocks.push(b);
        }
    }
    Ok((text, blocks))
}
