"""Merge a PPO LoRA adapter into its SFT model and save a plain model folder (safetensors + tokenizer)
for evaluation. The SFT model's ``spa_rl.json`` (its in-context-example setting) is copied into the merged
folder; an adapter whose ``spa_rl.json`` records the other setting is refused.

    python ppo/merge.py --model runs/demo/alfworld/sft/model --adapter runs/demo/alfworld/ppo/adapter \\
        --output runs/demo/alfworld/ppo/merged
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from spa_rl.agent.prompts import (
    MODEL_INFO_FILE,
    check_icl_examples,
    read_model_info,
    recorded_icl,
    write_model_info,
)
from spa_rl.cli import arg, parse
from spa_rl.fingerprint import claim_file, make_fingerprint, mark_file
from spa_rl.models.loading import load_tokenizer
from spa_rl.models.paths import resolve_model_path
from spa_rl.training import publish_dir


def merged_info(model: str, adapter: str) -> dict | None:
    """The merged folder's spa_rl.json: the SFT model's, with the adapter's PPO record added; None when
    neither has one."""
    info, ppo = read_model_info(model), read_model_info(adapter)
    if ppo is None:
        return info
    where = str(Path(adapter) / MODEL_INFO_FILE)
    icl = recorded_icl(ppo, where)
    if info is not None:
        check_icl_examples(recorded_icl(info, str(Path(model) / MODEL_INFO_FILE)), icl, where, "the adapter")
    out = dict(info) if info is not None else {"icl_examples": icl}
    out["ppo"] = {k: v for k, v in ppo.items() if k != "icl_examples"} | {"adapter": adapter}
    return out


def merge(model: str, adapter: str, output: str) -> Path:
    model = resolve_model_path(model)  # a typo'd folder (model or adapter) is no Hub id
    adapter = resolve_model_path(adapter, "--adapter", marker="adapter_config.json")
    info = merged_info(model, adapter)  # checked before the work
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    out = Path(output)
    tmp = out.with_name(out.name + ".partial")
    merged.save_pretrained(tmp, safe_serialization=True)
    tok = load_tokenizer(model)
    tok.padding_side = "left"
    tok.save_pretrained(tmp)
    if info is not None:
        write_model_info(tmp, **info)
    publish_dir(tmp, out)
    return out


@dataclass
class MergeConfig:
    model: str = arg(help="the SFT model the adapter was trained on")
    adapter: str = arg(help="LoRA adapter folder (ppo/train.py: <output-dir>/adapter)")
    output: str = arg(help="merged model folder to write")
    overwrite: bool = arg(False, "merge again even if the output is up to date")


def main(argv: list[str] | None = None) -> None:
    cfg = parse(MergeConfig, argv=argv, doc=__doc__)
    fp = make_fingerprint("merge", {}, {"model": cfg.model, "adapter": cfg.adapter})
    with claim_file(cfg.output, fp, cfg.overwrite, redo_when_changed=True) as current:
        if current:
            print(f"{cfg.output} is up to date; skipping")
            return
        mark_file(cfg.output, fp)
        print(f"merged model written to {merge(cfg.model, cfg.adapter, cfg.output)}")


if __name__ == "__main__":
    main()
