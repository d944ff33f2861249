#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, JOBS (default 1)
# at a time, seeded from the repository's own documents, and prints each
# target's executions and result. Needs cargo-fuzz (`cargo install
# cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 lets it use the
# sanitizer flags. Crashing inputs land in fuzz/artifacts/<target>/; copy
# them to fuzz/regressions/<target>/ so that `cargo test --test fuzz_regressions`
# keeps them fixed.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
JOBS=${JOBS:-1}
TARGETS=${TARGETS:-"load_text load_markdown load_html load_pdf chunker gguf gguf_tokenizer"}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O

seed() {
  local t=$1 dir=corpus/$1
  mkdir -p "$dir"
  case $t in
    load_text) cp ../corpus/*.txt "$dir"/ ;;
    load_markdown) cp ../corpus/*.md "$dir"/ ;;
    load_html) cp ../corpus/*.html "$dir"/ ;;
    load_pdf) cp ../corpus/*.pdf "$dir"/ ;;
    chunker) for f in ../corpus/*.md ../corpus/*.txt; do printf '\x80\x10\x01' | cat - "$f" > "$dir/$(basename "$f")"; done ;;
    gguf) ;; # seeds: regressions/gguf (scripts/make_fuzz_gguf_seed.py)
    gguf_tokenizer) cp ../corpus/*.md ../corpus/*.txt "$dir"/ ;;
  esac
  if [ -d "regressions/$t" ]; then cp regressions/"$t"/* "$dir"/ 2>/dev/null || true; fi
}

run() {
  local t=$1
  seed "$t"
  mkdir -p logs
  # The tokenizers and the chunker cost time per byte: shorter inputs, more runs.
  local max_len=262144
  case $t in chunker|gguf_tokenizer) max_len=4096 ;; esac
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -timeout=20 \
    -rss_limit_mb=4096 -max_len=$max_len -print_final_stats=1 > "logs/$t.log" 2>&1
  local rc=$?
  [ -f "logs/$t.log" ] || true
  local execs
  execs=$(grep -m1 'stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}')
  echo "$t: rc=$rc executions=${execs:-?} seconds=$SECONDS_EACH"
}

export -f run seed
export SECONDS_EACH
printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} bash -c 'run {} || true'
