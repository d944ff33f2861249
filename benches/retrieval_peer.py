#!/usr/bin/env python3
"""hnswlib and faiss on the same vectors and queries as `docent bench retrieval`.

    docent bench retrieval --synthetic 10000,100000 --peers      # runs this script itself
    docent bench retrieval --synthetic 10000,100000 --export /tmp/vecs --json > /tmp/docent-bench.json
    python3 benches/retrieval_peer.py /tmp/vecs /tmp/docent-bench.json

The script makes its own virtual environment (~/.cache/docent/bench-venv, or
$DOCENT_BENCH_VENV) with hnswlib, faiss-cpu and numpy the first time, then
re-runs itself inside it (pinned: PEERS below). It prints each library's
version and faiss's compile options, then, for every exported corpus it builds an HNSW graph
with docent's M and ef_construction in both libraries (inner product over
unit vectors, i.e. cosine), and for each ef in docent's sweep prints, beside
docent's own figures: recall@k against exact search, the p50 and p99 latency
of single queries, and queries per second on one thread and on all threads;
and each index's bytes per vector on disk (saved) and in memory (resident
growth while building, so an upper bound).
For the sentence encoder, see benches/embed_peer.py.
"""
import json
import os
import pathlib
import subprocess
import sys
import time

VENV = pathlib.Path(os.environ.get("DOCENT_BENCH_VENV", pathlib.Path.home() / ".cache/docent/bench-venv-2"))
PEERS = ["numpy==2.4.6", "hnswlib==0.8.0", "faiss-cpu==1.15.1"]


def ensure_venv():
    if pathlib.Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], check=True)
    os.execv(str(python), [str(python), *sys.argv])


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(-(-p / 100 * len(s) // 1)) - 1))]


def rss_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main():
    ensure_venv()
    import tempfile
    from importlib.metadata import version

    import faiss
    import hnswlib
    import numpy as np

    print(f"peers: hnswlib {version('hnswlib')}, faiss-cpu {version('faiss-cpu')} "
          f"(compile options: {faiss.get_compile_options().strip()}), numpy {version('numpy')}")

    vec_dir = pathlib.Path(sys.argv[1])
    docent = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else {"corpora": []}
    threads = os.cpu_count()
    for meta_path in sorted(vec_dir.glob("*.json")):
        meta = json.load(open(meta_path))
        name, dim, k, m, efc = meta["name"], meta["dim"], meta["k"], meta["m"], meta["ef_construction"]
        xb = np.fromfile(vec_dir / f"{name}.vectors.f32", dtype="<f4").reshape(-1, dim)
        xq = np.fromfile(vec_dir / f"{name}.queries.f32", dtype="<f4").reshape(-1, dim)
        truth = np.argsort(-(xq @ xb.T), axis=1)[:, :k]
        ours = next((c for c in docent["corpora"] if c["vectors"] == len(xb) and name.endswith(str(len(xb)))), None)
        print(f"\n{name}: {len(xb)} vectors x {dim}, {len(xq)} queries, k={k}, M={m}, ef_construction={efc}, {threads} threads")

        rss0 = rss_bytes()
        t = time.perf_counter()
        h = hnswlib.Index(space="ip", dim=dim)
        h.init_index(max_elements=len(xb), ef_construction=efc, M=m)
        h.set_num_threads(threads)
        h.add_items(xb, np.arange(len(xb)))
        h_build = time.perf_counter() - t
        h_mem = (rss_bytes() - rss0) / len(xb)

        rss0 = rss_bytes()
        t = time.perf_counter()
        f = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        f.hnsw.efConstruction = efc
        f.add(xb)
        f_build = time.perf_counter() - t
        f_mem = (rss_bytes() - rss0) / len(xb)
        with tempfile.TemporaryDirectory() as tmp:
            h.save_index(f"{tmp}/h.bin")
            faiss.write_index(f, f"{tmp}/f.bin")
            h_disk = os.path.getsize(f"{tmp}/h.bin") / len(xb)
            f_disk = os.path.getsize(f"{tmp}/f.bin") / len(xb)
        if ours:
            mem = ours.get("memory_bytes_per_vector")
            print(f"bytes per vector: docent {ours.get('disk_bytes_per_vector', float('nan')):.0f} on disk "
                  f"(store and lexical table included), "
                  f"{mem if mem is not None else float('nan'):.0f} in memory; "
                  f"hnswlib {h_disk:.0f} / {h_mem:.0f}; faiss {f_disk:.0f} / {f_mem:.0f}")
        docent_build = ours["build_s"] if ours and ours.get("build_s") else float("nan")
        print(f"build s: docent {docent_build:.1f} (includes the SQLite store)  hnswlib {h_build:.1f}  faiss {f_build:.1f}")
        print(f"{'ef':>5} | {'recall':>7} {'p50 ms':>7} {'p99 ms':>7} {'qps1':>7} {'qpsN':>7} | docent / hnswlib / faiss")
        for ef in meta["ef"]:
            rows = []
            for lib in ("hnswlib", "faiss"):
                lat, found = [], []
                if lib == "hnswlib":
                    h.set_ef(max(ef, k))
                    h.set_num_threads(1)
                    for q in xq:
                        t = time.perf_counter()
                        labels, _ = h.knn_query(q, k=k)
                        lat.append((time.perf_counter() - t) * 1e3)
                        found.append(labels[0])
                    h.set_num_threads(threads)
                    t = time.perf_counter()
                    h.knn_query(xq, k=k)
                    qpsn = len(xq) / (time.perf_counter() - t)
                else:
                    f.hnsw.efSearch = max(ef, k)
                    faiss.omp_set_num_threads(1)
                    for q in xq:
                        t = time.perf_counter()
                        _, labels = f.search(q[None, :], k)
                        lat.append((time.perf_counter() - t) * 1e3)
                        found.append(labels[0])
                    faiss.omp_set_num_threads(threads)
                    t = time.perf_counter()
                    f.search(xq, k)
                    qpsn = len(xq) / (time.perf_counter() - t)
                recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)])
                rows.append((recall, pct(lat, 50), pct(lat, 99), len(xq) / (sum(lat) / 1e3), qpsn))
            d = next((e for e in (ours or {}).get("sweep", []) if e["ef"] == ef), None)
            if d:
                print(f"{ef:>5} | {d['recall']:>7.4f} {d['hnsw_ms']['p50']:>7.3f} {d['hnsw_ms']['p99']:>7.3f} "
                      f"{d['qps_1_thread']:>7.0f} {d['qps_all_threads']:>7.0f} | docent")
            for (r, p50, p99, q1, qn), lib in zip(rows, ("hnswlib", "faiss")):
                print(f"{ef:>5} | {r:>7.4f} {p50:>7.3f} {p99:>7.3f} {q1:>7.0f} {qn:>7.0f} | {lib}")


if __name__ == "__main__":
    main()
