//! Any bytes as a GGUF file: the reader and the tokenizer built from its
//! metadata give an error or a usable value, never a panic or an abort.
#![no_main]

use std::io::Write;

use docent_generate::gguf::GgufFile;
use docent_generate::tokenizer::GgufTokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    f.flush().unwrap();
    let Ok(file) = GgufFile::open(f.path()) else {
        return;
    };
    let _ = file.architecture();
    if let Ok(tok) = GgufTokenizer::from_gguf(&file) {
        let ids = tok.encode("Hello, 세계! <s> 123", true, true);
        let _ = tok.decode(&ids);
    }
});
