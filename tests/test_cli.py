"""The one flag parser (spa_rl/cli.py) and that every Python entry point goes through it."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from spa_rl.cli import arg, build_parser, parse
from spa_rl.validate import positive_int

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Config:
    output_dir: str = arg("out", "where 100% goes", aliases=["--output"])
    kl_target: float | None = arg(6.0, "adaptive target; none: fixed")
    report_to: str | None = arg(None, "a word that may be 'none'")
    count: int = arg(3, "a count")
    whiten: bool = arg(True, "on by default")
    verbose: bool = arg(False, "off by default")
    mode: str = arg("a", "a mode", choices=("a", "b"))
    run_dir: list[str] = arg(default_factory=list, help="repeatable", repeat=True)

    def __post_init__(self) -> None:
        positive_int("--count", self.count)


def test_hyphens_underscores_aliases_and_none():
    cfg = parse(Config, argv=["--output", "o", "--kl_target", "none", "--report-to", "none", "--count", "2"])
    assert (cfg.output_dir, cfg.kl_target, cfg.report_to, cfg.count) == ("o", None, "none", 2)
    assert parse(Config, argv=["--output-dir", "p", "--kl-target", "0.5"]).kl_target == 0.5


def test_booleans_and_repeated_lists():
    cfg = parse(Config, argv=["--no-whiten", "--verbose", "--run-dir", "a", "--run-dir", "b", "c"])
    assert (cfg.whiten, cfg.verbose, cfg.run_dir) == (False, True, ["a", "b", "c"])
    assert parse(Config, argv=["--verbose", "false", "--whiten", "true"]).verbose is False


def test_refusals_name_the_flag(capsys):
    with pytest.raises(SystemExit) as e:
        parse(Config, argv=["--count", "0"])
    assert e.value.code == "--count must be an integer >= 1, got 0"
    with pytest.raises(SystemExit) as e:
        parse(Config, argv=["--mode", "c"])
    assert e.value.code == "--mode must be one of a, b, got 'c'"
    with pytest.raises(SystemExit) as e:
        parse(Config, argv=["--bogus", "1"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus 1" in capsys.readouterr().err


def test_help_lists_the_hyphenated_spelling_first_with_defaults():
    text = build_parser(Config).format_help()
    assert "--output-dir OUTPUT_DIR, --output OUTPUT_DIR, --output_dir OUTPUT_DIR" in text
    assert "where 100% goes (default: out)" in text and "{a,b}" in text


# Runs only in a separate virtualenv with pyserini and Java, where neither spa_rl nor transformers exist.
OUTSIDE_THE_PROJECT_ENV = {"tools/webshop_lucene_reference.py"}


def _entry_points() -> list[Path]:
    dirs = ["sft", "exploration", "prm", "ppo", "eval", "bench", "tools", "spa_rl/agent"]
    files = [
        p
        for d in dirs
        for p in sorted((REPO / d).glob("*.py"))
        if "__main__" in p.read_text() and str(p.relative_to(REPO)) not in OUTSIDE_THE_PROJECT_ENV
    ]
    assert len(files) >= 25, files
    return files


def test_every_entry_point_parses_flags_with_spa_rl_cli():
    """One flag parser: no entry point builds its own argparse parser."""
    for path in _entry_points():
        text = path.read_text()
        assert not re.search(r"import argparse|ArgumentParser\(", text), path
        # exploration reuses evaluation's flags (spa_rl.agent.evaluate.parse_args, built on spa_rl.cli)
        assert "from spa_rl.cli import" in text or "evaluate import evaluate, parse_args" in text, path


@pytest.mark.slow
@pytest.mark.parametrize("path", _entry_points(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_entry_point_prints_its_help(path):
    module = (
        ["-m", ".".join(path.relative_to(REPO).with_suffix("").parts)] if "spa_rl" in path.parts else [path]
    )
    res = subprocess.run(
        [sys.executable, *module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "usage:" in res.stdout
