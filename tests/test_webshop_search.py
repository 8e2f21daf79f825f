"""WebShop's search against Lucene itself: the analyzer's terms, the index's statistics and the ranked
results stored in tests/data/webshop_lucene_search.json, which WebShop's own engine (pyserini 0.17.0,
Lucene 8.11) produced (see its "produced_by" header and tools/check_webshop_search.py). No Java needed."""

import json
from pathlib import Path

import pytest

from envs.paths import data_dir
from envs.webshop.search import (
    STOP_WORDS,
    SearchIndex,
    byte4_to_int,
    int_to_byte4,
    porter_stem,
    standard_tokens,
    tokenize,
)

FIXTURE = Path(__file__).parent / "data" / "webshop_lucene_search.json"


@pytest.fixture(scope="module")
def lucene():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def index():
    path = data_dir() / "webshop" / "documents.jsonl"
    if not (data_dir() / "webshop" / ".ready").exists():
        pytest.exit(
            "WebShop data missing: run `bash scripts/setup.sh` (SPA_ENVS includes webshop)", returncode=2
        )
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    return SearchIndex([d["id"] for d in docs], [d["contents"] for d in docs])


# --- analyzer ------------------------------------------------------------------------------------
def test_standard_tokenizer_word_breaks():
    # UAX#29 as Lucene's StandardTokenizer applies it (each checked against Lucene)
    assert standard_tokens("description:rubber") == ["description:rubber"]  # ":" is MidLetter
    assert standard_tokens("200,000 mah") == ["200,000", "mah"]  # "," is MidNum
    assert standard_tokens("1.roll") == ["1", "roll"]  # "." joins letters or digits, not both
    assert standard_tokens("3.4oz 6.76 U.S.A.") == ["3.4oz", "6.76", "U.S.A"]
    assert standard_tokens("x-large a/b 1:2 1;2 e,f") == ["x", "large", "a", "b", "1", "2", "1;2", "e", "f"]
    assert standard_tokens("hello_world l'eau 12\"x18\" $19.99 50%") == [
        "hello_world", "l'eau", "12", "x18", "19.99", "50",
    ]  # fmt: skip
    assert standard_tokens("日本語テキスト ภาษาไทย ❤️ ★★ 👍🏽 x🏽") == [
        "日", "本", "語", "テキスト", "ภาษาไทย", "❤️", "★", "★", "👍🏽", "x", "🏽",
    ]  # fmt: skip
    assert [len(t) for t in standard_tokens("a" * 300)] == [255, 45]  # at most 255 characters a token


def test_possessives_stop_words_lower_case_and_stems():
    assert tokenize("Men's MEN'S women’s kids' john's's") == ["men", "men", "women", "kid", "john'"]
    assert tokenize("it's the and of a") == []  # "it" once "'s" is gone
    assert len(STOP_WORDS) == 33 and tokenize(" ".join(sorted(STOP_WORDS))) == []
    assert tokenize("The Quick BROWN Fox İstanbul ΣΑΣ") == ["quick", "brown", "fox", "istanbul", "σασ"]
    # Lucene's PorterStemmer (Porter's release 3): "bli" -> "ble", "logi" -> "log", short words kept
    assert [porter_stem(w) for w in ("possibly", "technology", "running", "ponies", "is", "us", "ies")] == [
        "possibl", "technolog", "run", "poni", "is", "us", "i",
    ]  # fmt: skip


def test_analyzer_gives_lucenes_terms(lucene):
    cases = lucene["tokens"]
    assert len(cases) >= 60
    wrong = [
        (c["text"][:60], tokenize(c["text"]), c["tokens"])
        for c in cases
        if tokenize(c["text"]) != c["tokens"]
    ]
    assert not wrong


# --- scoring -------------------------------------------------------------------------------------
def test_smallfloat_length_encoding():
    # SmallFloat.intToByte4 / byte4ToInt (values from Lucene's): exact below 24, then 4 significant bits
    lengths = (0, 1, 23, 24, 25, 40, 41, 100, 1000)
    assert [int_to_byte4(i) for i in lengths] == [0, 1, 23, 24, 25, 40, 40, 57, 87]
    assert [byte4_to_int(int_to_byte4(i)) for i in (23, 40, 41, 100, 1000)] == [23, 40, 40, 96, 984]
    assert byte4_to_int(255) == 2013265944
    decoded = [byte4_to_int(b) for b in range(256)]
    assert decoded == sorted(decoded) and all(byte4_to_int(int_to_byte4(n)) <= n for n in range(5000))


def test_index_statistics_are_lucenes(lucene, index):
    # docCount, sumTotalTermFreq and every document's stored length norm, as Lucene's index has them
    assert index._doc_count == lucene["collection"]["doc_count"] == 1000
    lengths = {d: len(tokenize(t)) for d, t in zip(index.ids, _texts(), strict=True)}
    assert sum(lengths.values()) == lucene["collection"]["sum_total_term_freq"]
    assert {d: int_to_byte4(n) for d, n in lengths.items()} == lucene["norms"]


def _texts():
    path = data_dir() / "webshop" / "documents.jsonl"
    return [json.loads(line)["contents"] for line in path.read_text().splitlines()]


def test_search_reproduces_lucenes_rankings(lucene, index):
    results = lucene["results"]
    assert len(results) >= 250
    top1 = [r["query"] for r in results if index.search(r["query"])[:1] != r["top10"][:1]]
    assert not top1  # the same first result for every query
    differ = [r["query"] for r in results if index.search(r["query"])[:10] != r["top10"]]
    assert not differ  # measured: identical top 10 (and top 50) on all 9,190 queries of the check tool
    hits = [r["query"] for r in results if len(index.search(r["query"])) != r["hits"]]
    assert not hits  # only matching documents, 50 at most


def test_ties_are_broken_by_id(index):
    ranked = index.ranked("rubber sole")
    assert ranked == sorted(ranked, key=lambda x: (-x[1], index.ids[x[0]]))
    assert len({s for _, s in ranked}) < len(ranked)  # there are ties here
    assert index.search("the of and") == [] and index.search("xylophone") == []
