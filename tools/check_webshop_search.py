"""Compare the project's WebShop search (envs/webshop/search.py) with WebShop's own Lucene search.

Lucene's side comes from ``tools/webshop_lucene_reference.py``, which runs in a separate virtualenv with
pyserini 0.17.0 and Java (see its docstring); this tool never imports pyserini. Outside CI:

    DOCS=../shared/data/webshop/search_documents_1000.jsonl.zst LUCENE=/work/lucene_venv/bin/python
    # the query set: goal instructions (full, and as the expert searches them), the goals' `query` field,
    # attribute lists, product titles, hand-written edge cases (9,190 queries)
    .venv/bin/python tools/check_webshop_search.py --command queries --output /tmp/queries.json
    # analyzer cases: hand-written ones and seeded random strings
    .venv/bin/python tools/check_webshop_search.py --command texts --output /tmp/texts.json
    $LUCENE tools/webshop_lucene_reference.py --documents $DOCS --queries /tmp/queries.json --doc-stats \
        --output /tmp/lucene.json
    $LUCENE tools/webshop_lucene_reference.py --documents $DOCS --analyze /tmp/texts.json --output /tmp/tokens.json
    # agreement: top-10 positions, identical top-10 / top-50 lists, top-1, and (--scores) Lucene's scores
    .venv/bin/python tools/check_webshop_search.py --command compare --lucene /tmp/lucene.json --scores [--module FILE]
    .venv/bin/python tools/check_webshop_search.py --command compare --lucene /tmp/tokens.json   # the analyzer only
    # the test fixture (tests/data/webshop_lucene_search.json): a fixed sample of the queries, the
    # analyzer cases and the index's statistics
    .venv/bin/python tools/check_webshop_search.py --command fixture --lucene /tmp/lucene.json --tokens /tmp/tokens.json \
        --documents $DOCS
    # the tokenizer's character classes (envs/webshop/lucene_chars.py), measured on Lucene:
    $LUCENE tools/webshop_lucene_reference.py --documents $DOCS --probe-chars --output /tmp/probes.json
    .venv/bin/python tools/check_webshop_search.py --command chars --lucene /tmp/probes.json

``--module FILE`` compares another implementation of the same interface (``tokenize``, ``SearchIndex``),
e.g. an earlier version of search.py, to measure before/after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spa_rl.cli import arg, parse  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "webshop_lucene_search.json"
CHARS_MODULE = ROOT / "envs" / "webshop" / "lucene_chars.py"
TOP = 10

# Hand-written queries that exercise the analyzer: punctuation, numbers, possessives, units, quotes,
# hyphens, slashes, colons, commas in numbers, stop words, non-ASCII.
EDGE_QUERIES = [
    "description:rubber", "200,000 mah power bank", "1.roll toilet paper", "men's shoes", "women’s dress",
    "MEN'S RUNNING SHOES", "3.4oz perfume", "3.4 oz perfume", "x-large t-shirt", "xx-large", "a/b c:d e,f",
    "16 inch table legs", "16\" table legs", "12\"x18\" rug", "6.76 fl oz", "1/2 inch", "2-pack", "pack of 2",
    "100% cotton", "$20", "price lower than 30.00 dollars", "under $50", "the", "the and of a", "it's",
    "don't", "l'oreal shampoo", "rock'n'roll", "wi-fi router", "usb-c cable", "usb c cable", "4k hdmi",
    "ipx6 waterproof", "20h playtime", "u.s.a.", "hello_world", "color: black, size: 13", "size:13",
    "color:black", "black | white", "navy blue/white", "5.5 us", "10.5 wide", "3x4", "3×4", "½ pound",
    "café latte", "crème brûlée", "❤ heart necklace", "★★★★★ rated", "🌸 flower dress", "日本 tea",
    "100,000", "1,2,3", "1;2", "0.5mm", "24\"x36\"", "#1 best seller", "co-op's", "john's's",
    "green tea green tea", "tea tea tea", "shoes shoes", "", "   ", "!!!", "a" * 300, "ＬＡＲＧＥ ｂｌａｃｋ",
    "İstanbul", "ΣΑΣ", "long lasting, anti-aging, natural ingredients", "gluten free; non-gmo",
    "easy-to-clean / dishwasher safe", "machine washable (cold)", "men’s", "kids'", "women's' shoes",
]  # fmt: skip


# Analyzer cases (Lucene's terms for each are stored in the fixture): the tokenizer's word breaks,
# possessives, stop words, lower case, Porter's rules (Porter's own examples), emoji and other scripts.
ANALYZER_CASES = [
    "description:rubber", "200,000", "1.roll", "men's shoes", "MEN'S", "women’s", "kids'", "john's's",
    "it's", "it’s", "don't", "l'eau", "o'clock", "rock'n'roll", "co-op's", "3.4oz", "x-large", "a/b", "c:d",
    "1:2", "1;2", "e,f", "1,2,3", "6.76", "U.S.A.", "wi-fi", "hello_world", "_x_", "__", "foo@bar.com",
    "http://x.com/y", "12\"x18\"", "10.5\"", "$19.99", "50%", "#1", "1/2", "×2", "3×4", "№5",
    " ".join(sorted("a an and are as at be but by for if in into is it no not of on or such that the their "
                    "then there these they this to was will with".split())),
    "The Quick BROWN Fox", "İstanbul ΣΑΣ", "ＬＡＲＧＥ ｂｌａｃｋ １２３", "café crème brûlée", "日本語テキスト",
    "ภาษาไทย", "한국어 텍스트", "❤️ love", "★★★ rated", "👍🏽 thumbs", "👨\u200d💼 office", "x🏽", "1⃣ #️⃣ 🇺🇸 🇺",
    "brand™ ©2020 ®", "a\u00a0b", "a\u202fb", "a\u00adb", "\u0301a", "a" * 300, "b" * 254 + ".c",
    "1" * 250 + "." + "2" * 10,
    "caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized "
    "hopping tanned falling hissing fizzed failing filing happy sky relational conditional rational "
    "valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization "
    "predication operator feudalism decisiveness hopefulness callousness formaliti sensitiviti "
    "sensibiliti triplicate formative formalize electriciti electrical hopeful goodness revival allowance "
    "inference airliner gyroscopic adjustable defensible irritant replacement adjustment dependent "
    "adoption homologou communism activate angulariti homologous effective bowdlerize probate rate cease "
    "controll roll technology apology possibly generalizations us ps ies yes dying lying news",
]  # fmt: skip


def _load_module(path: str | None):
    if path is None:
        from envs.webshop import search

        return search
    spec = importlib.util.spec_from_file_location("search_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documents() -> tuple[list[str], list[str]]:
    from envs.webshop.catalog import DOCUMENTS_FILE, webshop_root

    ids, texts = [], []
    with open(webshop_root() / DOCUMENTS_FILE) as f:
        for line in f:
            doc = json.loads(line)
            ids.append(doc["id"])
            texts.append(doc["contents"])
    return ids, texts


def build_queries() -> list[dict]:
    """[{query, kind}] deduplicated, in a fixed order."""
    from envs.webshop.catalog import load_catalog
    from envs.webshop.expert import search_query

    catalog = load_catalog()
    out, seen = [], set()

    def add(q: str, kind: str) -> None:
        if q not in seen:
            seen.add(q)
            out.append({"query": q, "kind": kind})

    for q in EDGE_QUERIES:
        add(q, "edge")
    for split in ("test", "train", "human"):
        for g in catalog.goals[split]:
            add(search_query(g), "instruction")  # what the expert (and a careful agent) searches
            add(g.instruction_text, "instruction_full")
            add(g.query, "goal_query")
            add(", ".join(g.attributes), "attributes")
            add(g.name.lower(), "title")  # the expert's second search
    for p in catalog.products.values():
        add(p.title, "title")
    return out


# Characters for random strings that stress the tokenizer's rules: word joiners, Hebrew quotes, emoji
# sequences (ZWJ, presentation selectors, skin tones, keycaps, flags, tags), marks, other scripts.
_FUZZ_CHARS = list("aZ1_.,:;'\"#* -") + [
    "\u200d", "\u200d", "\ufe0f", "\ufe0e", "\u20e3", "\U0001f468", "\U0001f44d", "\U0001f3fd", "\u2764",
    "\u2605", "\U0001f1fa", "\U0001f1f8", "\U000e0067", "\U000e007f", "ℹ", "Ⓜ", "©", "™", "\u0301",
    "\u00ad", "\u2060", "\u202f", "\u2019", "\uff07", "\uff10", "א", "\u05f3", "テ", "ー", "日", "あ", "ก",
    "\u0e31", "한", "\u0660", "\xa0", "İ", "Σ",
]  # fmt: skip


def fuzz_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_FUZZ_CHARS) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def cmd_texts(args) -> None:
    texts = ANALYZER_CASES + fuzz_texts(args.fuzz)
    Path(args.output).write_text(json.dumps(texts, ensure_ascii=False, indent=0))
    print(f"{len(ANALYZER_CASES)} analyzer cases and {args.fuzz} random strings")


def cmd_queries(args) -> None:
    queries = build_queries()
    Path(args.output).write_text(json.dumps([q["query"] for q in queries], ensure_ascii=False, indent=0))
    kinds = {}
    for q in queries:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    print(f"{len(queries)} queries: {kinds}")


def agreement(module, results: list[dict], kinds: dict[str, str] | None = None) -> dict:
    """Agreement of ``module``'s search with Lucene's results ([{query, ids, scores}])."""
    ids, texts = _documents()
    t0 = time.perf_counter()
    index = module.SearchIndex(ids, texts)
    build_s = time.perf_counter() - t0
    rows, latencies = [], []
    for r in results:
        t0 = time.perf_counter()
        mine = index.search(r["query"], 50)
        latencies.append(time.perf_counter() - t0)
        lucene = r["ids"]
        same_pos = sum(1 for a, b in zip(mine[:TOP], lucene[:TOP], strict=False) if a == b)
        n = max(len(mine[:TOP]), len(lucene[:TOP]))
        rows.append(
            {
                "query": r["query"],
                "kind": (kinds or {}).get(r["query"], ""),
                "positions": n,
                "same_positions": same_pos if n else 0,
                "identical_top10": mine[:TOP] == lucene[:TOP],
                "identical_top50": mine == lucene,
                "top1": (mine[:1] == lucene[:1]),
                "mine": mine[:TOP],
                "lucene": lucene[:TOP],
            }
        )
    positions = sum(r["positions"] for r in rows)
    lat = sorted(latencies)
    summary = {
        "queries": len(rows),
        "top10_positions_equal": sum(r["same_positions"] for r in rows) / max(positions, 1),
        "top10_identical": sum(r["identical_top10"] for r in rows) / len(rows),
        "top50_identical": sum(r["identical_top50"] for r in rows) / len(rows),
        "top1_equal": sum(r["top1"] for r in rows) / len(rows),
        "index_build_s": round(build_s, 3),
        "query_ms_p50": round(1000 * lat[len(lat) // 2], 3),
        "query_ms_p95": round(1000 * lat[int(len(lat) * 0.95)], 3),
        "query_ms_mean": round(1000 * sum(lat) / len(lat), 3),
    }
    return {"summary": summary, "rows": rows}


def _print_agreement(report: dict, show: int) -> None:
    print(json.dumps(report["summary"], indent=1))
    by_kind: dict[str, list] = {}
    for r in report["rows"]:
        by_kind.setdefault(r["kind"], []).append(r)
    for kind, rows in sorted(by_kind.items()):
        pos = sum(r["positions"] for r in rows)
        print(
            f"  {kind or '?':18s} n={len(rows):5d}"
            f"  top10 positions {sum(r['same_positions'] for r in rows) / max(pos, 1):.4f}"
            f"  identical {sum(r['identical_top10'] for r in rows) / len(rows):.4f}"
            f"  top1 {sum(r['top1'] for r in rows) / len(rows):.4f}"
        )
    for r in [r for r in report["rows"] if not r["identical_top10"]][:show]:
        print(f"- {r['query'][:100]!r}\n    mine   {r['mine']}\n    lucene {r['lucene']}")


def cmd_compare(args) -> None:
    lucene = json.loads(Path(args.lucene).read_text())
    module = _load_module(args.module)
    report: dict = {}
    if lucene.get("results"):
        kinds = {q["query"]: q["kind"] for q in build_queries()}
        report = agreement(module, lucene["results"], kinds)
        _print_agreement(report, args.show)
        if args.scores and hasattr(module.SearchIndex, "scores"):
            _compare_scores(module, lucene["results"])
    if lucene.get("tokens"):
        wrong = [t for t in lucene["tokens"] if module.tokenize(t["text"]) != t["tokens"]]
        for t in wrong[: args.show]:
            print(
                f"  terms differ: {t['text'][:80]!r}: {module.tokenize(t['text'])[:10]} vs {t['tokens'][:10]}"
            )
        n = len(lucene["tokens"])
        print(f"analyzer: {n - len(wrong)} / {n} texts give Lucene's terms")
    if args.output:
        Path(args.output).write_text(json.dumps(report, ensure_ascii=False, indent=1))


def _compare_scores(module, results: list[dict]) -> None:
    """Lucene's float scores against the module's (exact equality expected)."""
    ids, texts = _documents()
    index = module.SearchIndex(ids, texts)
    pos = {d: i for i, d in enumerate(ids)}
    exact = total = 0
    worst = 0.0
    for r in results:
        scores = index.scores(r["query"])
        for d, s in zip(r["ids"], r["scores"], strict=True):
            total += 1
            mine = scores.get(pos[d])
            if mine == s:
                exact += 1
            elif mine is not None:
                worst = max(worst, abs(mine - s))
            else:
                worst = float("inf")
    print(
        f"scores: {exact} / {total} of Lucene's hit scores reproduced exactly (largest difference {worst:g})"
    )


def cmd_fixture(args) -> None:
    """A fixed sample of the queries with Lucene's top 10, for tests/test_webshop_search.py."""
    lucene = json.loads(Path(args.lucene).read_text())
    by_query = {r["query"]: r for r in lucene["results"]}
    queries = [q for q in build_queries() if q["query"] in by_query]
    rng = random.Random(0)
    chosen = [q for q in queries if q["kind"] == "edge"]
    per_kind = {"instruction": 70, "instruction_full": 30, "goal_query": 30, "attributes": 25, "title": 35}
    for kind, n in per_kind.items():
        pool = [q for q in queries if q["kind"] == kind]
        chosen += rng.sample(pool, min(n, len(pool)))
    records = []
    for q in chosen:
        r = by_query[q["query"]]
        records.append(
            {"query": q["query"], "kind": q["kind"], "top10": r["ids"][:TOP], "hits": len(r["ids"])}
        )
    tokens = lucene.get("tokens", [])
    if args.tokens:
        tokens = json.loads(Path(args.tokens).read_text())["tokens"]
    tokens = [{"text": t["text"], "tokens": t["tokens"]} for t in tokens]
    header = dict(lucene["produced_by"])
    header["how"] = (
        "tools/check_webshop_search.py --command queries -> tools/webshop_lucene_reference.py (pyserini 0.17.0 = "
        "Anserini 0.14.3, WebShop's pin; index built as WebShop's run_indexing.sh from the mirror's "
        "search_documents_1000.jsonl.zst; LuceneSearcher.search(query, k=50)) -> "
        "tools/check_webshop_search.py --command fixture"
    )
    if args.documents:
        header["documents_sha256"] = hashlib.sha256(Path(args.documents).read_bytes()).hexdigest()
    out = {"produced_by": header, "results": records, "tokens": tokens}
    if "doc_stats" in lucene:  # the index's statistics: docCount, sumTotalTermFreq, each document's norm
        stats = lucene["doc_stats"]
        out["collection"] = stats["collection"]
        out["norms"] = {d: v["norm"] for d, v in sorted(stats["documents"].items())}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_compact_json(out))
    print(f"wrote {path}: {len(records)} queries, {len(tokens)} analyzer cases, {path.stat().st_size} bytes")


def _compact_json(obj: dict) -> str:
    """JSON with one line per top-level key, and one per item of a top-level list."""
    parts = []
    for key, value in obj.items():
        if isinstance(value, list):
            items = ",\n".join(json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f"{json.dumps(key)}: [\n{items}\n]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# --- the tokenizer's character classes ----------------------------------------------------------------

# Probe masks (tools/webshop_lucene_reference.py PROBES) -> the classes of Lucene's StandardTokenizer.
_CLASS_OF_SIGNATURE = {
    ("alone", "cc_two_tokens"): ("SINGLE",),  # Han, Hiragana: one token per character
    ("alone", "a_b", "1_2", "a_", "_a", "cc", "c:c", "c_c", "c_zwj_c", "1_", "_1", "hebrew_"): ("LETTER",),
    ("alone", "a_b", "1_2", "a_", "_a", "cc", "c:c", "c_c", "c_zwj_c", "1_", "_1", "hebrew_", "zwj_c"): (
        "LETTER",
        "LETTER_EMOJI",  # a letter that the emoji rules take too ("ℹ", "Ⓜ")
    ),
    ("alone", "a_b", "1_2", "a_", "_a", "cc", "c,c", "c_c", "c_zwj_c", "1_", "_1", "hebrew_"): ("NUMERIC",),
    ("alone", "c_zwj_c", "zwj_c", "cc_two_tokens"): ("EMOJI",),
    ("alone", "c_zwj_c", "cc_two_tokens"): ("EMOJI",),  # the skin tones (U+1F3FB..U+1F3FF)
    ("a_b", "1_2", "a_", "1_", "hebrew_"): ("FEZ",),  # Format, Extend, ZWJ
    ("alone", "cc", "c_zwj_c"): ("SEA",),  # Line_Break=Complex_Context runs
    ("alone", "cc", "c_c", "c_zwj_c"): ("KATAKANA",),
    ("alone", "a_b", "1_2", "a_", "cc", "c_zwj_c", "1_", "hebrew_"): ("SEA", "FEZ"),
    ("cc", "c_zwj_c"): ("REGIONAL",),  # regional indicators: a pair is an emoji (a flag)
    ("1_2",): ("MID_NUM",),
    ("a_b", "1_2", "a_", "_a", "1_", "_1", "hebrew_"): ("EXTEND_NUM_LET",),
    ("a_b",): ("MID_LETTER",),
    ("a_b", "1_2"): ("MID_NUM_LET",),
    ("a_b", "1_2", "hebrew_"): ("SINGLE_QUOTE",),
    (): (),
}


def cmd_chars(args) -> None:
    probes = json.loads(Path(args.lucene).read_text())
    probes = probes.get("char_probes", probes)
    names = probes["probes"]
    classes: dict[str, list[list[int]]] = {}
    unknown = []
    for first, last, mask in probes["ranges"]:
        signature = [n for i, n in enumerate(names) if mask >> i & 1]
        skin = "_skin_tone" in signature
        if skin:
            signature.remove("_skin_tone")
        key = tuple(signature)
        if key not in _CLASS_OF_SIGNATURE:
            unknown.append((first, last, signature))
            continue
        targets = list(_CLASS_OF_SIGNATURE[key])
        if skin and "EMOJI" in targets:
            targets.append("MODIFIER_BASE")  # an emoji that takes a skin tone
        for name in targets:
            ranges = classes.setdefault(name, [])
            if ranges and ranges[-1][1] == first - 1:
                ranges[-1][1] = last
            else:
                ranges.append([first, last])
    if unknown:
        raise SystemExit(f"code points with an unexpected behaviour: {unknown[:10]}")
    lines = [
        '"""Lucene 8\'s StandardTokenizer character classes (Unicode 9.0 word-break properties and Emoji 11.0',
        "data, as its JFlex grammar compiled them), measured on Lucene itself: generated by",
        "``tools/check_webshop_search.py --command chars`` from ``tools/webshop_lucene_reference.py --probe-chars``.",
        "Do not edit by hand. Each value: space-separated hexadecimal code point ranges.",
        '"""',
        "",
        "CLASSES = {",
    ]
    for name in sorted(classes):
        text = " ".join(f"{a:X}" if a == b else f"{a:X}-{b:X}" for a, b in classes[name])
        if len(text) <= 96:
            lines.append(f'    "{name}": "{text}",')
            continue
        lines.append(f'    "{name}": (')
        lines += [f'        "{text[i : i + 96]}"' for i in range(0, len(text), 96)]
        lines.append("    ),")
    lines.append("}")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(
        f"wrote {args.output}: "
        + ", ".join(f"{k} {sum(b - a + 1 for a, b in v)}" for k, v in classes.items())
    )


@dataclasses.dataclass
class Config:
    command: str = arg(
        help="queries: write the query set; texts: write the analyzer cases; compare: agreement with "
        "Lucene's results; fixture: write the test fixture; chars: write envs/webshop/lucene_chars.py "
        "from --probe-chars output",
        choices=("queries", "texts", "compare", "fixture", "chars"),
    )
    output: str | None = arg(
        None,
        f"where to write (required for queries and texts; fixture: {FIXTURE}; "
        f"chars: {CHARS_MODULE}; compare: the per-query report, optional)",
    )
    lucene: str | None = arg(None, "tools/webshop_lucene_reference.py output (compare, fixture, chars)")
    fuzz: int = arg(200, "texts: also this many random strings (seeded)")
    module: str | None = arg(None, "compare: another search.py to compare (default: envs/webshop/search.py)")
    show: int = arg(10, "compare: print this many differing queries")
    scores: bool = arg(False, "compare: also compare Lucene's float scores")
    documents: str | None = arg(None, "fixture: the indexed documents file, to record its sha256")
    tokens: str | None = arg(None, "fixture: a reference output whose analyzer tokens to store (--analyze)")

    def __post_init__(self) -> None:
        if self.command in ("queries", "texts") and not self.output:
            raise ValueError(f"--output: required for --command {self.command}")
        if self.command in ("compare", "fixture", "chars") and not self.lucene:
            raise ValueError(f"--lucene: required for --command {self.command}")
        if self.output is None and self.command in ("fixture", "chars"):
            self.output = str(FIXTURE if self.command == "fixture" else CHARS_MODULE)


def main() -> None:
    args = parse(Config, doc=__doc__)
    {
        "queries": cmd_queries,
        "texts": cmd_texts,
        "compare": cmd_compare,
        "fixture": cmd_fixture,
        "chars": cmd_chars,
    }[args.command](args)


if __name__ == "__main__":
    main()
