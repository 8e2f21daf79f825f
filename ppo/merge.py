"""Merge a PPO LoRA adapter into its SFT model and save a plain model folder (safetensors + tokenizer)
for evaluation.

    python ppo/merge.py --model runs/demo/alfworld/sft/model --adapter runs/demo/alfworld/ppo/adapter \\
        --output runs/demo/alfworld/ppo/merged
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from eval_agent.backends.hf import load_tokenizer
from eval_agent.training import publish_dir


def merge(model: str, adapter: str, output: str) -> Path:
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    out = Path(output)
    tmp = out.with_name(out.name + ".partial")
    merged.save_pretrained(tmp, safe_serialization=True)
    tok = load_tokenizer(model)
    tok.padding_side = "left"
    tok.save_pretrained(tmp)
    publish_dir(tmp, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the SFT model the adapter was trained on")
    ap.add_argument(
        "--adapter", required=True, help="LoRA adapter folder (ppo/train.py: <output-dir>/adapter)"
    )
    ap.add_argument("--output", required=True, help="merged model folder to write")
    args = ap.parse_args()
    print(f"merged model written to {merge(args.model, args.adapter, args.output)}")


if __name__ == "__main__":
    main()
