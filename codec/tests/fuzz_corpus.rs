//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same entry points
//! the fuzzers use, as an ordinary test: every input that was ever interesting stays checked.

use busbar_codec::fuzzing::TARGETS;
use std::path::Path;

#[test]
fn committed_corpus_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!entries.is_empty(), "{} has no corpus", dir.display());
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            target(&data);
        }
    }
}
