"""The SFT recipe: labels masked exactly on non-assistant tokens; the stage script runs end to end on
the tiny profile, the loss falls, and the saved model loads back."""

import json
import os
import subprocess

import pytest
from conftest import load_recipe

from spa_rl.agent.chat import render_chat
from spa_rl.agent.sharegpt import from_messages, to_messages
from spa_rl.training import IGNORE_INDEX, CausalLMCollator

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
ExpertDataset = load_recipe("sft/train.py").ExpertDataset


def conversation():
    msgs = [
        {"role": "user", "content": "Instruction.\n\nExample task.\nfind a pen"},
        {"role": "assistant", "content": "Thought: example.\nAction: go to desk 1"},
        {"role": "user", "content": "Now it is your turn.\nfind a cup"},
        {"role": "assistant", "content": "Thought: look on the table.\nAction: go to table 1"},
        {"role": "user", "content": "On the table 1, you see a cup 1."},
        {"role": "assistant", "content": "Thought: got it.\nAction: take cup 1 from table 1"},
    ]
    return from_messages("t", msgs, context_turns=3)


def test_labels_are_exactly_the_expert_turns(smol_tokenizer):
    rec = conversation()
    ds = ExpertDataset([rec], smol_tokenizer, max_length=4096, train_on_context=False)
    item = ds[0]
    msgs, start = to_messages(rec)
    rc = render_chat(smol_tokenizer, msgs, train_from=start)
    assert item["input_ids"] == rc.input_ids
    for tok, lab, m in zip(item["input_ids"], item["labels"], rc.assistant_mask, strict=True):
        assert lab == (tok if m else IGNORE_INDEX)
    learned = smol_tokenizer.decode([t for t in item["labels"] if t != IGNORE_INDEX])
    assert learned == (
        "Thought: look on the table.\nAction: go to table 1<|im_end|>"
        "Thought: got it.\nAction: take cup 1 from table 1<|im_end|>"
    )
    # ETO's behaviour (learn the in-context example too) is an explicit option.
    ds_all = ExpertDataset([rec], smol_tokenizer, max_length=4096, train_on_context=True)
    learned_all = smol_tokenizer.decode([t for t in ds_all[0]["labels"] if t != IGNORE_INDEX])
    assert learned_all.startswith("Thought: example.\nAction: go to desk 1<|im_end|>")


def test_conversations_whose_first_turn_is_past_max_length_are_counted(smol_tokenizer):
    rec = conversation()
    msgs, start = to_messages(rec)
    whole = len(render_chat(smol_tokenizer, msgs, train_from=start).input_ids)
    long_rec = from_messages("long", [{"role": "user", "content": "word " * 400}, *msgs[1:]], context_turns=3)
    ds = ExpertDataset([rec, long_rec], smol_tokenizer, max_length=whole, train_on_context=False)
    assert (len(ds), ds.dropped, ds.cut) == (1, 1, 0)
    with pytest.raises(ValueError, match="no record has a trainable turn within max_length=8"):
        ExpertDataset([rec], smol_tokenizer, max_length=8, train_on_context=False)


def test_collator_pads_labels_with_ignore_index():
    batch = CausalLMCollator(pad_token_id=2)(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5], "labels": [5]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_loss_on_labelled_positions_equals_the_full_loss():
    """SFT computes logits only where a label follows; loss and gradients equal the model's own loss
    over all positions (right padding, two rows with different labelled spans)."""
    import torch
    from conftest import TINY
    from transformers import AutoModelForCausalLM

    from spa_rl.training import labelled_positions_loss

    batch = CausalLMCollator(pad_token_id=0)(
        [
            {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, 7, 8, -100, 10]},
            {"input_ids": [11, 12, 13, 14], "labels": [-100, -100, -100, 14]},
        ]
    )
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    for n_items in (None, 7):
        model.zero_grad()
        want = model(**batch, num_items_in_batch=n_items).loss
        want.backward()
        want_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        got = labelled_positions_loss(model, batch, n_items)
        got.backward()
        assert torch.allclose(got, want, rtol=1e-5)
        for g, w in zip((p.grad for p in model.parameters()), want_grads, strict=True):
            assert torch.allclose(g, w, rtol=1e-4, atol=1e-5)  # float rounding: ~1e-6 relative


@pytest.mark.slow
@pytest.mark.usefixtures("alfworld_ready")
def test_sft_stage_tiny_profile_end_to_end(tmp_path):
    env = dict(os.environ, PROFILE="tiny", RUN_DIR=str(tmp_path / "run"), SFT_DATA=str(tmp_path / "sft.json"))
    run = subprocess.run(
        ["bash", "sft/run_sft.sh", "alfworld"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "run" / "sft"
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["trajectories"] == 4
    losses = [
        json.loads(ln)["loss"] for ln in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in ln
    ]
    assert len(losses) == 4 and losses[-1] < losses[0]
    model_dir = out / "model"
    assert (model_dir / "model.safetensors").exists() and not (model_dir / "training_args.bin").exists()

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.config.num_hidden_layers == 2
    again = subprocess.run(
        ["bash", "sft/run_sft.sh", "alfworld"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and "exists with these settings; pass --overwrite" in again.stdout
