//! Any bytes given to the pdf loader: an error or a document whose blocks
//! lie on character boundaries inside its text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((doc, _warnings)) = docent_ingest::load_bytes("fuzz.pdf", data) {
        doc.check().expect("a loaded document is well formed");
    }
});
