"""Do two pipeline runs agree? Compares two run folders stage by stage: model weights (SHA-256 of every
safetensors file), exploration and evaluation episodes (every field but timing and paths in ``meta``),
step values, PPO data and the evaluation metrics. For checking that a refactoring changed nothing.

    python tools/compare_runs.py --a /work/demo_old --b /work/demo_new --output results/x/compare.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402

# Fields of an episode's meta that say where and how fast it ran, not what was played.
RUN_ONLY = {"model", "seconds"}


@dataclass
class CompareConfig:
    a: str = arg(help="the first run folder")
    b: str = arg(help="the second run folder")
    output: str | None = arg(None, "also write the comparison as JSON here")


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _episodes(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            d["meta"] = {k: v for k, v in d.get("meta", {}).items() if k not in RUN_ONLY}
            out.append(d)
    return sorted(out, key=lambda d: (d.get("task_id"), d.get("rollout")))


def compare(a: Path, b: Path) -> dict:
    rows = {}
    for wa in sorted(a.rglob("*.safetensors")):
        rel = wa.relative_to(a)
        wb = b / rel
        rows[str(rel)] = "same" if wb.exists() and _sha(wa) == _sha(wb) else "differs"
    for ea in sorted(a.rglob("*.jsonl")):
        rel = ea.relative_to(a)
        eb = b / rel
        if rel.name in ("train_log.jsonl",) or "checkpoint" in rel.parts:
            continue  # training logs carry wall times
        if not eb.exists():
            rows[str(rel)] = "missing in b"
        elif '"meta"' in ea.read_text()[:100000].split("\n", 1)[0]:  # trajectory records
            same = _episodes(ea) == _episodes(eb)
            rows[str(rel)] = f"same ({len(_episodes(ea))} episodes)" if same else "differs"
        else:
            rows[str(rel)] = "same" if ea.read_bytes() == eb.read_bytes() else "differs"
    for sa in sorted(a.rglob("eval/*/summary.json")):
        rel = sa.relative_to(a)
        sb = b / rel
        ma = json.loads(sa.read_text())["metrics"]
        mb = json.loads(sb.read_text())["metrics"] if sb.exists() else None
        rows[f"{rel} metrics"] = "same" if ma == mb else "differs"
    return rows


def main(argv: list[str] | None = None) -> None:
    cfg = parse(CompareConfig, argv=argv, doc=__doc__)
    rows = compare(Path(cfg.a), Path(cfg.b))
    width = max(map(len, rows), default=0)
    for k, v in rows.items():
        print(f"{k:<{width}}  {v}")
    differs = [k for k, v in rows.items() if v != "same" and not v.startswith("same (")]
    print(
        f"{len(rows) - len(differs)}/{len(rows)} agree"
        + (f"; differ: {', '.join(differs)}" if differs else "")
    )
    if cfg.output:
        write_json_atomic(cfg.output, {"command": command_line(), "a": cfg.a, "b": cfg.b, "rows": rows})


if __name__ == "__main__":
    main()
