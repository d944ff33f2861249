#!/usr/bin/env python3
"""docent beside llama.cpp on the same GGUF file, prompts and threads.

    python3 benches/generate_peer.py bench --docent target/release/docent \\
        --model smollm2-135m-instruct-q4_1 --threads 2

runs `docent bench generate --json --export` (one untimed warm-up batch,
then prompts of 100, 500 and 2,000 tokens cut from corpus/, each followed by
64 greedy tokens), then llama.cpp (warmed up the same way)
(through llama-cpp-python) on exactly those token ids, with the same context
length, batch size and threads, each in its own process, and prints both
with their ratios: load time, resident memory after load and at peak,
prompt tokens/s and decode tokens/s.

    python3 benches/generate_peer.py ask MODEL.gguf ASK.json --threads 2

compares one `docent ask --json --show-prompt` run (time to first token)
with llama.cpp on the same prompt.

The script makes its own virtual environment (~/.cache/docent/llama-venv-HASH,
one per set of build options, or $DOCENT_LLAMA_VENV) with llama-cpp-python the first time, then re-runs
itself inside it. pip builds llama.cpp from source (about ten minutes on two
cores) with CMAKE_ARGS chosen for this CPU: GGML_NATIVE off, and AVX2, FMA,
F16C, AVX-512 (F, VBMI, VNNI, BF16) and AVX-VNNI on where /proc/cpuinfo lists
them, AMX off. GGML_NATIVE would turn AMX on where the CPU lists it, and
these virtual machines list AMX but fault on its instructions ("Illegal
instruction" in llama.cpp's AMX matmul): the build here is the strongest
peer that runs. Every figure is printed with llama.cpp's system-info line.
"""
import argparse
import json
import statistics
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"


def cmake_args():
    """llama.cpp's build options for this CPU, AMX left out (see above)."""
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    # /proc/cpuinfo spells some flags with an underscore and some without.
    has = lambda *names: all(n in flags or n.replace("_", "") in flags for n in names)  # noqa: E731
    opts = {
        "GGML_NATIVE": False,
        "GGML_AVX": has("avx"),
        "GGML_AVX2": has("avx2"),
        "GGML_FMA": has("fma"),
        "GGML_F16C": has("f16c"),
        "GGML_AVX_VNNI": has("avx_vnni"),
        "GGML_AVX512": has("avx512f"),
        "GGML_AVX512_VBMI": has("avx512_vbmi"),
        "GGML_AVX512_VNNI": has("avx512_vnni"),
        "GGML_AVX512_BF16": has("avx512_bf16"),
        "GGML_AMX_TILE": False,
        "GGML_AMX_INT8": False,
        "GGML_AMX_BF16": False,
    }
    return " ".join(f"-D{k}={'ON' if v else 'OFF'}" for k, v in opts.items())


# One venv per set of build options, so that a change of options rebuilds.
VENV = pathlib.Path(os.environ.get(
    "DOCENT_LLAMA_VENV",
    pathlib.Path.home() / ".cache/docent" / f"llama-venv-{__import__('hashlib').sha256(cmake_args().encode()).hexdigest()[:8]}"))


def ensure_venv():
    try:
        import llama_cpp  # noqa: F401
        return
    except ImportError:
        pass
    if pathlib.Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("llama_cpp is missing from " + str(VENV))
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not python.exists() or subprocess.run([str(python), "-c", "import llama_cpp"]).returncode != 0:
        env = dict(os.environ, CMAKE_ARGS=cmake_args(), FORCE_CMAKE="1")
        print(f"building {LLAMA_CPP_PYTHON} with CMAKE_ARGS={env['CMAKE_ARGS']}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-cache-dir", "numpy",
                        LLAMA_CPP_PYTHON], check=True, env=env)
    os.execv(str(python), [str(python), *sys.argv])


def rss_mb(key="VmRSS:"):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


def last_token(llm):
    """Greedy choice after the last evaluated token (llama-cpp-python keeps
    only the last position's logits unless logits_all is set)."""
    import numpy as np

    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
    return int(np.argmax(logits))


def llama_run(spec_path):
    """Child process: llama.cpp on the exported prompts; prints JSON."""
    import numpy as np
    from llama_cpp import Llama

    spec = json.load(open(spec_path))
    before = rss_mb()
    t = time.perf_counter()
    llm = Llama(model_path=spec["file"], n_ctx=spec["ctx"], n_threads=spec["threads"],
                n_threads_batch=spec["threads"], n_batch=spec["batch"], n_ubatch=spec["batch"],
                logits_all=False, verbose=False)
    load_ms = (time.perf_counter() - t) * 1e3
    after = rss_mb()
    # Warm up as docent does: one untimed batch and one decoding step.
    first = spec["prompts"][0] if spec["prompts"] else []
    warm = (first * (1 + spec["batch"] // max(1, len(first))))[: spec["batch"]]
    if warm:
        llm.reset()
        llm.eval(warm)
        llm.eval([last_token(llm)])
    runs = []
    for ids in spec["prompts"]:
        llm.reset()  # n_tokens = 0: eval() drops the cache beyond it
        t = time.perf_counter()
        llm.eval(ids)
        prompt_ms = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        for _ in range(spec["decode"]):
            tok = last_token(llm)
            llm.eval([tok])
        decode_ms = (time.perf_counter() - t) * 1e3
        runs.append({"prompt_tokens": len(ids), "prompt_tokens_per_s": len(ids) / prompt_ms * 1e3,
                     "decode_tokens_per_s": spec["decode"] / decode_ms * 1e3})
    print(json.dumps({"load_ms": load_ms, "rss_before_load_mb": before, "rss_after_load_mb": after,
                      "peak_rss_mb": rss_mb("VmHWM:"), "runs": runs,
                      "llama_cpp": __import__("llama_cpp").__version__,
                      "system_info": __import__("llama_cpp").llama_print_system_info().decode().strip()}))


def median(values):
    return statistics.median(values)


def bench(args):
    # Rounds alternate docent and llama.cpp, so that a shared machine's
    # drift falls on both; each figure is the median over rounds, and the
    # ratio's range over rounds is printed beside it.
    ours_all, theirs_all = [], []
    with tempfile.TemporaryDirectory() as tmp:
        spec = pathlib.Path(tmp) / "prompts.json"
        cmd = [args.docent, "bench", "generate", "--model", args.model, "--threads", str(args.threads),
               "--prompt-tokens", args.prompt_tokens, "--decode", str(args.decode), "--ctx", str(args.ctx),
               "--batch", str(args.batch), "--docs", args.docs, "--json", "--export", str(spec)]
        for _ in range(args.rounds):
            ours_all.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            theirs_all.append(json.loads(subprocess.run([sys.executable, __file__, "_llama", str(spec)],
                                                        check=True, capture_output=True, text=True).stdout))
    ours, theirs = ours_all[0], theirs_all[0]
    print(f"{ours['model']} ({ours['architecture']}): {args.threads} threads, ctx {ours['ctx']}, "
          f"batch {args.batch}, {args.decode} decoded tokens, {args.rounds} alternating rounds (medians); "
          f"{ours['cpu']}; docent kernels {ours['isa']}, llama-cpp-python {theirs['llama_cpp']}")
    print(f"llama.cpp system info: {theirs['system_info']}")

    def both(get):
        return [get(o) for o in ours_all], [get(t) for t in theirs_all]

    rows = [("load ms", *both(lambda r: r["load_ms"])),
            ("memory after load MB", *both(lambda r: r["rss_after_load_mb"])),
            ("  of it for the model MB", *both(lambda r: r["rss_after_load_mb"] - r["rss_before_load_mb"])),
            ("peak memory MB", *both(lambda r: r["peak_rss_mb"]))]
    for k, run in enumerate(ours["runs"]):
        n = run["prompt_tokens"]
        rows.append((f"prompt {n}: tokens/s", *both(lambda r: r["runs"][k]["prompt_tokens_per_s"])))
        rows.append((f"prompt {n}: decode tokens/s", *both(lambda r: r["runs"][k]["decode_tokens_per_s"])))
    print(f"{'':<30}{'docent':>10}{'llama.cpp':>11}{'ratio':>8}  ratio per round")
    for name, a, b in rows:
        per = [x / y for x, y in zip(a, b) if y]
        spread = f"{min(per):.2f}-{max(per):.2f}" if per else ""
        ratio = median(a) / median(b) if median(b) else float("nan")
        print(f"{name:<30}{median(a):>10.1f}{median(b):>11.1f}{ratio:>8.2f}  {spread}")
    if args.json:
        json.dump({"docent": ours, "llama_cpp": theirs}, open(args.json, "w"), indent=1)


def ask(args):
    import numpy as np
    from llama_cpp import Llama

    data = json.load(open(args.ask_json))
    t0 = time.perf_counter()
    llm = Llama(model_path=args.model, n_ctx=4096, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=512, verbose=False)
    load_ms = (time.perf_counter() - t0) * 1e3
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    ids = llm.tokenize(data["prompt"].encode(), add_bos=add_bos, special=True)
    t1 = time.perf_counter()
    llm.eval(ids)
    prompt_ms = (time.perf_counter() - t1) * 1e3
    n = max(1, data["timings"]["decode_tokens"])
    t2 = time.perf_counter()
    tok = last_token(llm)
    first_ms = prompt_ms + (time.perf_counter() - t2) * 1e3
    for _ in range(n - 1):
        llm.eval([tok])
        tok = last_token(llm)
    decode_ms = (time.perf_counter() - t2) * 1e3
    d = data["timings"]
    rows = [("model load ms", d["model_load_ms"], load_ms),
            ("prompt tokens", d["prompt_tokens"], len(ids)),
            ("prompt tokens/s", d["prompt_tokens_per_s"], len(ids) / prompt_ms * 1e3),
            ("time to first token ms", d["time_to_first_token_ms"], first_ms),
            ("decode tokens", d["decode_tokens"], n),
            ("decode tokens/s", d["decode_tokens_per_s"], n / decode_ms * 1e3)]
    print(f"{data['model']} ({args.threads} threads)")
    print(f"{'':<24}{'docent':>12}{'llama.cpp':>12}{'ratio':>8}")
    for name, a, b in rows:
        print(f"{name:<24}{a:>12.1f}{b:>12.1f}{(a / b if b else float('nan')):>8.2f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "_llama":
        return llama_run(sys.argv[2])
    ensure_venv()
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--docent", default="target/release/docent")
    b.add_argument("--model", default="smollm2-135m-instruct-q4_1")
    b.add_argument("--threads", type=int, default=os.cpu_count())
    b.add_argument("--prompt-tokens", default="100,500,2000")
    b.add_argument("--decode", type=int, default=64)
    b.add_argument("--rounds", type=int, default=3, help="alternating docent / llama.cpp runs")
    b.add_argument("--ctx", type=int, default=4096)
    b.add_argument("--batch", type=int, default=512)
    b.add_argument("--docs", default="corpus")
    b.add_argument("--json", help="also write both sides' figures here")
    a = sub.add_parser("ask")
    a.add_argument("model")
    a.add_argument("ask_json", help="output of docent ask --json --show-prompt")
    a.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    bench(args) if args.cmd == "bench" else ask(args)


if __name__ == "__main__":
    main()
