//! Replays every committed fuzz corpus file (fuzz/corpus/<target>/) through the same checks the
//! fuzz targets run, on stable and without libFuzzer: an input that once crashed a decoder, or
//! that reached deep into it, stays checked by the ordinary test suite.

#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_targets_checks() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, check) in checks::TARGETS {
        let directory = corpus.join(target);
        let files: Vec<_> = std::fs::read_dir(&directory)
            .unwrap_or_else(|error| panic!("corpus of {target} at {directory:?}: {error}"))
            .map(|item| item.expect("a readable corpus directory").path())
            .collect();
        assert!(!files.is_empty(), "the corpus of {target} is empty");
        for file in files {
            let data = std::fs::read(&file).expect("a readable corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} fails on corpus file {file:?}");
        }
    }
}
