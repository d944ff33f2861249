//! `docent index` killed with SIGKILL at random moments: the index always
//! loads and answers, and the next run brings it to exactly the state an
//! uninterrupted run gives; and a reader never sees a mix of the two.
//!
//! `DOCENT_KILL_TRIALS` sets the number of kill points (30 by default; more
//! for a longer local run).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::{state, State};
use docent_index::Index;

/// The folder to index: the corpus plus enough generated notes that a run
/// takes a few seconds and passes through loading, embedding and writing.
fn make_folder(dir: &Path) {
    common::copy_dir(&common::corpus(), dir);
    for i in 0..40 {
        let text = format!(
            "# Note {i}\n\nThis note {i} is about topic number {i}. {}\n\n## Details\n\n{}\n",
            "Retrieval finds passages; generation writes the answer. ".repeat(8 + i % 5),
            "Chunks overlap so that no sentence is lost at a boundary. ".repeat(6 + i % 7),
        );
        std::fs::write(dir.join(format!("note-{i:02}.md")), text).unwrap();
    }
}

fn index(cwd: &Path, dir: &str) -> std::process::Output {
    common::docent(cwd, &["index", dir])
}

/// `docent index docs` in `cwd`, in the background, its output discarded.
fn spawn_index(cwd: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(["index", "docs"])
        .current_dir(cwd)
        .env_remove("DOCENT_INDEX")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The tests of this file time runs of `docent index`: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A small reproducible generator of kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn sigkill_at_random_points_never_leaves_a_broken_index() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::encoder();
    let trials: usize = std::env::var("DOCENT_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // The reference: one uninterrupted run, timed.
    let reference = tempfile::tempdir().unwrap();
    make_folder(&reference.path().join("docs"));
    common::ok(&index(reference.path(), "docs"));
    // Timed again with the model files warm, as the trials will run.
    std::fs::remove_dir_all(reference.path().join(".docent")).unwrap();
    let started = Instant::now();
    common::ok(&index(reference.path(), "docs"));
    let full = started.elapsed();
    let want = state(&reference.path().join(".docent"));
    assert!(want.0.len() > 40 && want.1.len() > 40);

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let work = tempfile::tempdir().unwrap();
    let docs = work.path().join("docs");
    let mut killed_while_running = 0;
    for trial in 0..trials {
        // Start each trial from a different earlier state: none, half the
        // notes indexed, or everything with some notes since changed.
        let _ = std::fs::remove_dir_all(work.path().join(".docent"));
        let _ = std::fs::remove_dir_all(&docs);
        make_folder(&docs);
        let had_index = trial % 3 != 0;
        if had_index {
            for i in (0..40).step_by(2) {
                std::fs::remove_file(docs.join(format!("note-{i:02}.md"))).unwrap();
            }
            common::ok(&index(work.path(), "docs"));
            std::fs::remove_dir_all(&docs).unwrap();
            make_folder(&docs);
        }
        let before = had_index.then(|| state(&work.path().join(".docent")));

        // Runs that start from an earlier index are shorter than the
        // reference run: kill within the first 70% of it.
        let delay = full.mul_f64(rng.next() * 0.7);
        let mut child = spawn_index(work.path());
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_while_running += 1;
        }
        let _ = child.kill(); // SIGKILL on Unix
        child.wait().unwrap();

        // Whatever the moment, the index is the old one or the new one.
        let index_dir = work.path().join(".docent");
        if Index::exists(&index_dir) {
            let now = state(&index_dir);
            assert!(
                Some(&now) == before.as_ref() || now == want,
                "trial {trial} (killed after {delay:?}): the index is neither the old state nor the new one"
            );
            let search = common::docent(work.path(), &["search", "what is retrieval?"]);
            common::ok(&search);
        } else {
            assert!(!had_index, "trial {trial}: the earlier index is gone");
        }

        // The next run finishes the job.
        common::ok(&index(work.path(), "docs"));
        assert!(
            state(&index_dir) == want,
            "trial {trial} (killed after {delay:?}): the rerun differs from an uninterrupted run"
        );
    }
    eprintln!(
        "{trials} kill trials ({killed_while_running} killed while running, \
         uninterrupted run {full:?}): no failure"
    );
    // Not a vacuous test: a good share of the kills landed mid-run.
    assert!(
        killed_while_running * 3 >= trials,
        "only {killed_while_running} of {trials} kills landed mid-run"
    );
}

#[test]
fn readers_see_the_old_or_the_new_index_while_a_writer_runs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::encoder();
    let work = tempfile::tempdir().unwrap();
    let docs = work.path().join("docs");
    make_folder(&docs);
    for i in (0..40).step_by(2) {
        std::fs::remove_file(docs.join(format!("note-{i:02}.md"))).unwrap();
    }
    common::ok(&index(work.path(), "docs"));
    let index_dir = work.path().join(".docent");
    let old = state(&index_dir);
    std::fs::remove_dir_all(&docs).unwrap();
    make_folder(&docs);
    let mut writer = spawn_index(work.path());
    // Read as fast as possible until the writer is done, keeping each
    // distinct state seen; a read that fails to load fails the test.
    let mut reads = 0;
    let mut seen: Vec<State> = Vec::new();
    loop {
        let done = writer.try_wait().unwrap().is_some();
        let now = state(&index_dir);
        reads += 1;
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if done {
            break;
        }
    }
    assert!(writer.wait().unwrap().success());
    let new = state(&index_dir);
    assert!(new != old);
    // Every read saw one whole state, old then new, never anything else.
    assert!(seen.len() <= 2, "{} different states were seen", seen.len());
    assert!(
        seen.iter().all(|s| *s == old || *s == new),
        "a read saw a mixed index"
    );
    if seen.len() == 2 {
        assert!(seen[0] == old && seen[1] == new);
    }
    eprintln!(
        "{reads} reads while the writer ran ({} states seen): each saw the old or the new index",
        seen.len()
    );
    let search = common::docent(work.path(), &["search", "what is retrieval?"]);
    common::ok(&search);
}
