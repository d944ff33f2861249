#!/usr/bin/env python3
"""Writes corpus/how-docent-works.pdf, the corpus's one PDF, from the text below.

A plain PDF 1.4 file with the standard Helvetica font: no dependencies, so the
file can be rebuilt anywhere with `python3 scripts/make_corpus_pdf.py`.
"""
import pathlib
import textwrap

TITLE = "How docent works"
PAGES = [
    [
        "docent answers questions from a folder of your own documents, on your own",
        "computer, with no cloud service. It follows the classic retrieval-augmented",
        "generation loop: question, retrieve, generate.",
        "",
        "Step 1: indexing",
        "The command docent index walks a folder, honouring .gitignore files, and",
        "reads text, Markdown, HTML and PDF files. Each document is cut into chunks",
        "at headings, paragraphs and sentences. Chunk sizes are counted in the",
        "tokens of the sentence encoder, so that no chunk is longer than the",
        "encoder can read. Each chunk remembers its file, line or page, and heading.",
        "",
        "Step 2: embedding",
        "A small sentence encoder, all-MiniLM-L6-v2 by default, turns every chunk",
        "into a vector of 384 numbers. Texts with similar meaning get vectors that",
        "point in similar directions. The encoder runs on the CPU through candle,",
        "the Rust machine learning framework from Hugging Face.",
    ],
    [
        "Step 3: storing",
        "Chunks and their metadata are kept in a SQLite database, and the vectors",
        "in an HNSW graph, a structure that finds nearest neighbours quickly",
        "without comparing the query with every vector. A new index is written",
        "beside the old one and switched in with one atomic rename, so an",
        "interrupted run never damages the index you already have.",
        "",
        "Step 4: searching",
        "The command docent search embeds the question with the same encoder and",
        "asks the graph for the closest chunks. Each result shows its score, the",
        "file and line it came from, and its heading.",
        "",
        "Step 5: answering",
        "A small quantized language model in a GGUF file reads the best chunks",
        "and the question and writes an answer that cites its sources, or says",
        "that the documents do not contain the answer.",
    ],
]


def escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def page_stream(lines, first):
    out = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
    if first:
        out += ["/F2 18 Tf", f"({escape(TITLE)}) Tj", "/F1 11 Tf", "T*", "T*"]
    for line in lines:
        for part in textwrap.wrap(line, 90) or [""]:
            out += [f"({escape(part)}) Tj", "T*"]
    out.append("ET")
    return "\n".join(out).encode("latin-1")


def main():
    objects = []  # bodies, object number = index + 1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    kids = []
    for i, lines in enumerate(PAGES):
        data = page_stream(lines, i == 0)
        content = add(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
        kids.append(add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>" % (pages, content, font, bold)
        ))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages
    objects[pages - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info << /Title (%s) >> >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, catalog, TITLE.encode(), xref)
    path = pathlib.Path(__file__).resolve().parent.parent / "corpus" / "how-docent-works.pdf"
    path.write_bytes(bytes(out))
    print(f"wrote {path} ({len(out)} bytes)")


if __name__ == "__main__":
    main()
