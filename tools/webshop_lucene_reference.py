"""WebShop's own search engine (pyserini 0.17.0 = Anserini 0.14.3 / Lucene 8) on the 1000 products: the
reference that ``tools/check_webshop_search.py`` and ``tests/test_webshop_search.py`` compare the project's
search with.

Not part of the project's environment and never imported by it: it runs in a separate virtualenv with
WebShop's pin of pyserini and a Java runtime (JDK 11 or newer; checked with OpenJDK 17):

    python3 -m venv /work/lucene_venv
    /work/lucene_venv/bin/pip install pyjnius==1.9.0 numpy pandas tqdm
    /work/lucene_venv/bin/pip install --no-deps pyserini==0.17.0     # WebShop's requirements.txt pin

(``--no-deps``: pyserini's dense-retrieval dependencies (faiss, torch, ...) are not needed; the package
``pyserini.search`` is entered without its ``__init__``, which imports them.)

    /work/lucene_venv/bin/python tools/webshop_lucene_reference.py \\
        --documents ../shared/data/webshop/search_documents_1000.jsonl.zst \\
        [--queries queries.json] [--analyze texts.json] [--doc-stats] [--probe-chars] \\
        --output lucene.json [--index-dir DIR]

The index is built as WebShop's ``search_engine/run_indexing.sh`` builds it (``python -m
pyserini.index.lucene --collection JsonCollection --generator DefaultLuceneDocumentGenerator --threads 1
--storePositions --storeDocvectors --storeRaw``) from the documents of WebShop's own 1000-product index,
and each query is run as WebShop's engine runs it: ``LuceneSearcher(index).search(keywords, k=50)``.
The output holds, per query, the ids of the hits in Lucene's order and their unrounded scores (from the
same query run on Lucene's IndexSearcher directly, checked to give the same order: SimpleSearcher
rounds its scores to 4 decimals); with ``--analyze``, the terms of Anserini's default English analyzer
and the tokens of Lucene's StandardTokenizer for each text; with ``--doc-stats``, the index's
statistics and each document's term frequencies and stored length norm; with ``--probe-chars``, how
StandardTokenizer treats every code point in a few contexts (its character classes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

K = 50  # WebShop's SEARCH_RETURN_N


def _pyserini_lucene():
    """pyserini's LuceneSearcher without pyserini.search's __init__ (which imports faiss, torch...)."""
    import pyserini

    pkg = types.ModuleType("pyserini.search")
    pkg.__path__ = [os.path.join(os.path.dirname(pyserini.__file__), "search")]
    sys.modules["pyserini.search"] = pkg
    base = __import__("pyserini.search._base", fromlist=["JQuery", "JQueryGenerator"])
    pkg.JQuery, pkg.JQueryGenerator = base.JQuery, base.JQueryGenerator
    lucene = types.ModuleType("pyserini.search.lucene")
    lucene.__path__ = [os.path.join(pkg.__path__[0], "lucene")]
    sys.modules["pyserini.search.lucene"] = lucene
    from pyserini.search.lucene._searcher import LuceneSearcher

    return LuceneSearcher


def build_index(documents: Path, index_dir: Path) -> None:
    """WebShop's run_indexing.sh on the given documents (a .jsonl or .jsonl.zst file)."""
    with tempfile.TemporaryDirectory() as tmp:
        collection = Path(tmp) / "resources_1k"
        collection.mkdir()
        target = collection / "documents.jsonl"
        if documents.suffix == ".zst":
            with open(target, "wb") as f:
                subprocess.run(["zstd", "-dc", str(documents)], stdout=f, check=True)
        else:
            target.write_bytes(documents.read_bytes())
        subprocess.run(
            [sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection",
             "--input", str(collection), "--index", str(index_dir),
             "--generator", "DefaultLuceneDocumentGenerator", "--threads", "1",
             "--storePositions", "--storeDocvectors", "--storeRaw"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


def doc_stats(index_dir: Path) -> dict:
    """Per document: term frequencies of ``contents`` and the one-byte length norm Lucene stored."""
    from jnius import autoclass

    paths = autoclass("java.nio.file.Paths")
    directory = autoclass("org.apache.lucene.store.FSDirectory").open(paths.get(str(index_dir)))
    reader = autoclass("org.apache.lucene.index.DirectoryReader").open(directory)
    out = {}
    for ctx in reader.leaves().toArray():
        leaf = ctx.reader()
        norms = leaf.getNormValues("contents")
        for d in range(leaf.maxDoc()):
            doc_id = leaf.document(d).get("id")
            assert norms.advanceExact(d)
            terms = leaf.getTermVector(d, "contents")
            it = terms.iterator()
            tf = {}
            while True:
                t = it.next()
                if t is None:
                    break
                tf[t.utf8ToString()] = it.totalTermFreq()
            out[doc_id] = {"norm": int(norms.longValue()) & 0xFF, "tf": tf, "lucene_doc": ctx.docBase + d}
    totals = {
        "doc_count": reader.getDocCount("contents"),
        "sum_total_term_freq": reader.getSumTotalTermFreq("contents"),
    }
    return {"collection": totals, "documents": out}


def _raw_scorer(index_dir: Path):
    """The same search as SimpleSearcher.search(q, k) (BagOfWordsQueryGenerator, BM25(0.9, 0.4), sorted by
    score then by id), returning Lucene's unrounded float scores (SimpleSearcher's ScoreTiesAdjusterReranker
    rounds them to 4 decimals and perturbs ties, keeping the order)."""
    from jnius import autoclass, cast

    paths = autoclass("java.nio.file.Paths")
    directory = autoclass("org.apache.lucene.store.FSDirectory").open(paths.get(str(index_dir)))
    reader = autoclass("org.apache.lucene.index.DirectoryReader").open(directory)
    searcher = autoclass("org.apache.lucene.search.IndexSearcher")(
        cast("org.apache.lucene.index.IndexReader", reader)
    )
    searcher.setSimilarity(autoclass("org.apache.lucene.search.similarities.BM25Similarity")(0.9, 0.4))
    analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
    generator = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")()
    sort = autoclass("io.anserini.search.SimpleSearcher").BREAK_SCORE_TIES_BY_DOCID

    def run(q: str):
        query = generator.buildQuery("contents", analyzer, q)
        top = searcher.search(query, K, sort, True)
        docs = top.scoreDocs
        return [searcher.doc(d.doc).get("id") for d in docs], [float(d.score) for d in docs]

    return run


# Per code point c, whether Lucene's StandardTokenizer makes each of these texts one token (bit set) —
# enough to tell its character classes apart (see tools/check_webshop_search.py --command chars).
PROBES = (
    ("alone", "{c}"),  # c is a token by itself
    ("a_b", "a{c}b"),
    ("1_2", "1{c}2"),
    ("a_", "a{c}"),
    ("_a", "{c}a"),
    ("cc", "{c}{c}"),
    ("c:c", "{c}:{c}"),
    ("c,c", "{c},{c}"),
    ("c_c", "{c}_{c}"),
    ("c_zwj_c", "{c}\u200d{c}"),
    ("1_", "1{c}"),
    ("_1", "{c}1"),
    ("hebrew_", "\u05d0{c}"),
    ("_skin_tone", "{c}\U0001f3fd"),
    ("zwj_c", "\u200d{c}"),
)


def probe_chars() -> dict:
    """For every code point, the probes above as a bit mask (plus a last bit: "{c}{c}" gives two tokens
    c, c), run-length encoded as [first, last, mask] ranges."""
    from jnius import autoclass

    analyzer = (
        autoclass("org.apache.lucene.analysis.custom.CustomAnalyzer")
        .builder()
        .withTokenizer("standard", autoclass("java.util.HashMap")())
        .build()
    )  # StandardTokenizer alone: no lower-casing
    utils = autoclass("io.anserini.analysis.AnalyzerUtils")
    cps = [c for c in range(0x20, 0x110000) if not 0xD800 <= c < 0xE000]
    masks = [0] * len(cps)
    marker = "XMX"
    for bit, (_, probe) in enumerate(PROBES):
        for start in range(0, len(cps), 20000):
            chunk = cps[start : start + 20000]
            texts = [probe.replace("{c}", chr(c)) for c in chunk]
            groups: list[list[str]] = [[]]
            for t in utils.analyze(analyzer, f" {marker} ".join(texts)).toArray():
                if t == marker:
                    groups.append([])
                else:
                    groups[-1].append(t)
            assert len(groups) == len(chunk)
            for i, (text, toks) in enumerate(zip(texts, groups, strict=True)):
                if toks == [text]:
                    masks[start + i] |= 1 << bit
                if probe == "{c}{c}" and toks == [text[0], text[0]]:
                    masks[start + i] |= 1 << len(PROBES)
    ranges = []
    for c, m in zip(cps, masks, strict=True):
        if ranges and ranges[-1][2] == m and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c, m])
    return {"probes": [name for name, _ in PROBES] + ["cc_two_tokens"], "ranges": ranges}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--documents", type=Path, required=True)
    ap.add_argument("--queries", type=Path, help="JSON list of query strings")
    ap.add_argument("--analyze", type=Path, help="JSON list of texts to analyse")
    ap.add_argument("--doc-stats", action="store_true")
    ap.add_argument(
        "--probe-chars", action="store_true", help="StandardTokenizer's classes of all code points"
    )
    ap.add_argument("--index-dir", type=Path, help="reuse or keep the index here (default: a temp dir)")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index_dir or Path(tmp) / "indexes_1k"
        if not (index_dir / "segments_1").exists() and not any(index_dir.glob("segments_*")):
            build_index(args.documents, index_dir)
        searcher = _pyserini_lucene()(str(index_dir))
        from jnius import autoclass

        out = {
            "produced_by": {
                "tool": "tools/webshop_lucene_reference.py",
                "pyserini": getattr(__import__("pyserini"), "__version__", "0.17.0"),
                "lucene": autoclass("org.apache.lucene.util.Version").LATEST.toString(),
                "java": autoclass("java.lang.System").getProperty("java.version"),
                "documents": str(args.documents),
                "search": f"LuceneSearcher(index).search(query, k={K})",
            },
            "num_docs": searcher.num_docs,
        }
        if args.queries:
            results = []
            raw = _raw_scorer(index_dir)
            for q in json.loads(args.queries.read_text()):
                hits = searcher.search(q, k=K)
                ids = [h.docid for h in hits]
                raw_ids, raw_scores = raw(q)
                assert raw_ids == ids, (q, ids, raw_ids)
                results.append({"query": q, "ids": ids, "scores": raw_scores})
            out["results"] = results
        if args.analyze:
            analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
            utils = autoclass("io.anserini.analysis.AnalyzerUtils")
            standard = autoclass("org.apache.lucene.analysis.standard.StandardAnalyzer")(
                autoclass("org.apache.lucene.analysis.CharArraySet").EMPTY_SET
            )  # StandardTokenizer + LowerCaseFilter only: the word boundaries
            out["tokens"] = [
                {
                    "text": t,
                    "tokens": list(utils.analyze(analyzer, t).toArray()),
                    "standard": list(utils.analyze(standard, t).toArray()),
                }
                for t in json.loads(args.analyze.read_text())
            ]
        if args.doc_stats:
            out["doc_stats"] = doc_stats(index_dir)
        if args.probe_chars:
            out["char_probes"] = probe_chars()
    args.output.write_text(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
