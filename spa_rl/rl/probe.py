"""PPO's learning curve (``--probe-every``): greedy play of a fixed set of training tasks between updates."""

from __future__ import annotations

import json
from pathlib import Path

from envs import select_tasks
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.metrics import summarize
from spa_rl.agent.runner import EpisodeSpec, RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records, write_jsonl_atomic
from spa_rl.rl.merged_policy import lora_generator
from spa_rl.rl.sources import SourceConfig


class TrainingProbe:
    """PPO's learning curve: every ``probe_every`` updates the current policy plays a fixed set of
    ``probe_tasks`` training tasks greedily (drawn with ``probe_seed``, the same for every run and seed, from
    the tasks PPO may use: ``--task-types`` / ``--task-ids``). Offline PPO's own rollouts are fixed, so this
    is the only sign there of whether the policy gets better. Episodes go to ``probe_rollouts.jsonl``
    (rollout index = updates done), figures to ``probe_log.jsonl``; a resumed run drops probes past its
    checkpoint."""

    def __init__(self, cfg: SourceConfig, tokenizer, policy, start_iteration: int = 0):
        self.cfg, self.policy = cfg, policy
        self.tasks = select_tasks(cfg.env, "train", cfg.probe_tasks, "random", cfg.probe_seed, cfg.task_types,
                                  cfg.task_ids, cfg.exclude_task_ids)  # fmt: skip
        device = str(next(policy.parameters()).device)
        self.gen = lora_generator(policy.lm, tokenizer, cfg.model, device, cfg.gen_batch_size)
        out = Path(cfg.output_dir)
        self.records, self.log = out / "probe_rollouts.jsonl", out / "probe_log.jsonl"
        kept = [r for r in read_records(self.records, repair_torn_tail=True) if r.rollout <= start_iteration]
        write_jsonl_atomic(self.records, [r.to_json() for r in kept])
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.entries = [
            e for e in map(json.loads, filter(str.strip, lines)) if e["updates"] <= start_iteration
        ]
        write_jsonl_atomic(self.log, [json.dumps(e) for e in self.entries])

    def due(self, updates: int) -> bool:
        every = self.cfg.probe_every
        return every > 0 and updates % every == 0 and all(e["updates"] != updates for e in self.entries)

    def run(self, updates: int) -> dict:
        """Play the probe tasks with the weights after ``updates`` PPO updates; returns the logged figures."""
        cfg = self.cfg
        self.gen.weights_changed()
        self.policy.eval()
        rcfg = RolloutConfig(batch_size=cfg.gen_batch_size, max_steps=cfg.max_steps,
                             generation=GenerationConfig(cfg.max_new_tokens, 0.0, 1.0, 0),
                             env_options=cfg.env_options)  # fmt: skip
        specs = [EpisodeSpec(t, updates, meta={"updates": updates}) for t in self.tasks]
        meta = {"model": f"{cfg.model} + LoRA after {updates} PPO updates (probe)", "temperature": 0.0}
        records, _ = run_rollouts([], self.gen, self.records, rcfg, specs=specs, progress=False, meta=meta,
                                  icl_examples=cfg.icl_examples)  # fmt: skip
        m = summarize(records)
        entry = {"updates": updates, "train_success": m["success_rate"], "train_grounding": m["grounding"],
                 "n": m["n"]}  # fmt: skip
        self.entries.append(entry)
        write_jsonl_atomic(self.log, [json.dumps(e) for e in self.entries])
        return entry
