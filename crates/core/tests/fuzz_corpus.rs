//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/<target>`) through the same entry points
//! the fuzz targets call, on stable Rust and without libFuzzer, so CI catches regressions on every
//! input the fuzzer found interesting.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Fewer files than this means the corpus went missing or was emptied by mistake.
const MIN_FILES: usize = 10;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target)
}

/// Calls `run` on every regular file under the target's corpus and returns how many it replayed.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut pending = vec![dir.clone()];
    let mut files = Vec::new();
    while let Some(d) = pending.pop() {
        let entries = fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("cannot read corpus directory {}: {e}", d.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()))
                .path();
            let is_hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if is_hidden {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut replayed = 0;
    for path in &files {
        #[expect(
            clippy::disallowed_methods,
            reason = "the test loads the corpus; the core itself still does no I/O"
        )]
        let data = match fs::read(path) {
            Ok(data) => data,
            // A fuzzer running on this corpus replaces inputs it reduces; skip the ones it removed.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        // A panic here names the input: rerun it with `cargo fuzz run <target> <file>`.
        eprintln!("{target}: {}", path.display());
        run(&data);
        replayed += 1;
    }
    assert!(
        replayed >= MIN_FILES,
        "{target}: only {replayed} corpus files in {} (expected at least {MIN_FILES})",
        dir.display()
    );
    replayed
}

#[test]
fn jsonrpc_classify_corpus() {
    let n = replay("jsonrpc_classify", mcp_guard_core::fuzzing::classify_bytes);
    eprintln!("jsonrpc_classify: replayed {n} corpus files");
}

#[test]
fn pattern_parse_corpus() {
    let n = replay("pattern_parse", mcp_guard_core::fuzzing::pattern_parse);
    eprintln!("pattern_parse: replayed {n} corpus files");
}
