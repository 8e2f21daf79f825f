"""Progress estimator, step-value variants and reward fusion, on real expert conversations and the
tiny model."""

import copy
import json
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import load_recipe
from test_chat import LLAMA3_TEMPLATE

from envs import load_tasks
from spa_rl.agent.experts import expert_messages
from spa_rl.agent.react import parse_reply
from spa_rl.agent.schema import RecordError, StepRecord, TrajectoryRecord
from spa_rl.estimator import fitting
from spa_rl.estimator.data import StepCollator, encode_rollout, read_step_values
from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator
from spa_rl.rewards import VARIANTS, fuse, read_ppo_data, step_values
from spa_rl.training import ListDataset

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
TINY = str(REPO / "models" / "tiny-llama")


def record_from_expert(task, n_steps=None, success=True, rollout=0, grounded=None):
    """A trajectory record built from the expert's conversation (optionally cut to ``n_steps``)."""
    msgs, prefix = expert_messages(task)
    agent = msgs[prefix:]
    turns = [agent[k]["content"] for k in range(0, len(agent), 2)]
    obs = [agent[k]["content"] for k in range(1, len(agent), 2)] + ["done"]
    n = n_steps or len(turns)
    msgs = msgs[: prefix + 2 * n - 1]
    g = grounded or [True] * n
    steps = [StepRecord(turns[i], parse_reply(turns[i]).action, obs[i], g[i], 0.0) for i in range(n)]
    return TrajectoryRecord(
        env="alfworld", split="train", task_id=task.task_id, task_type=task.task_type, rollout=rollout,
        messages=msgs, prefix_len=prefix, steps=steps, reward=float(success), success=success,
        n_steps=n, finish_reason="success" if success else "max_steps", meta={"temperature": 0.7},
    )  # fmt: skip


@pytest.fixture(scope="module")
def records(alfworld_ready):
    tasks = load_tasks("alfworld", "train", limit=3)
    out = []
    for i, t in enumerate(tasks):
        out.append(record_from_expert(t, success=True))
        out.append(record_from_expert(t, n_steps=2 + i, success=False, rollout=1))
    return out


@pytest.mark.parametrize("template", ["chatml", "llama3"])
def test_step_positions_are_the_ends_of_the_agent_turns(smol_tokenizer, records, template):
    tok = copy.deepcopy(smol_tokenizer)
    if template == "llama3":
        tok.chat_template = LLAMA3_TEMPLATE
    end = "<|im_end|>" if template == "chatml" else "<|eot_id|>"
    for rec in records[:2]:
        enc = encode_rollout(tok, rec, max_length=None)
        assert len(enc["step_pos"]) == rec.n_steps
        prev = 0
        for pos, step in zip(enc["step_pos"], rec.steps, strict=True):
            text = tok.decode(enc["input_ids"][prev : pos + 1])
            assert text.endswith(step.reply + end), text[-200:]
            prev = pos + 1


@pytest.mark.parametrize("head", ["mlp", "vocab-linear"])
def test_step_values_sum_to_the_prediction(smol_tokenizer, records, head):
    model = ProgressEstimator.create(EstimatorConfig(TINY, head=head, backbone="frozen"))
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    collate = StepCollator(smol_tokenizer.pad_token_id)
    feats = [encode_rollout(smol_tokenizer, r, None) for r in records[:3]]
    batch = collate(feats)
    out = model(**batch)
    assert out["values"].shape == (sum(r.n_steps for r in records[:3]),)
    k = 0
    for row, r in enumerate(records[:3]):
        assert out["prediction"][row].item() == pytest.approx(
            out["values"][k : k + r.n_steps].sum().item(), abs=1e-5
        )
        k += r.n_steps
    # Padding does not change a rollout's values.
    alone = model(**collate(feats[1:2]))["values"]
    assert torch.allclose(
        alone, out["values"][records[0].n_steps : records[0].n_steps + records[1].n_steps], atol=1e-4
    )
    assert torch.allclose(out["loss"], torch.mean((out["prediction"] - batch["target"]) ** 2))


@pytest.mark.parametrize("backbone", ["lora", "full"])
def test_estimator_saves_and_loads_back(tmp_path, smol_tokenizer, records, backbone):
    model = ProgressEstimator.create(EstimatorConfig(TINY, head="mlp", backbone=backbone)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    batch = StepCollator(smol_tokenizer.pad_token_id)([encode_rollout(smol_tokenizer, records[0], None)])
    before = model(**batch)["values"]
    model.save(tmp_path / "est")
    assert not list((tmp_path / "est").rglob("*.bin")) and not list((tmp_path / "est").rglob("*.pt"))
    after = ProgressEstimator.load(tmp_path / "est")(**batch)["values"]
    assert torch.allclose(before, after, atol=1e-5)


def test_tiny_estimator_overfits_a_few_rollouts(smol_tokenizer, records):
    recipe = load_recipe("prm/train.py")

    torch.manual_seed(0)
    model = ProgressEstimator.create(EstimatorConfig(TINY, head="mlp", backbone="frozen", mlp_hidden=64))
    items = [encode_rollout(smol_tokenizer, r, None) for r in records]
    dataset = ListDataset(items)
    collate = StepCollator(smol_tokenizer.pad_token_id)
    args = SimpleNamespace(learning_rate=3e-3, weight_decay=0.0, seed=0, per_device_train_batch_size=6,
                           num_train_epochs=300, logging_steps=100)  # fmt: skip
    hist = recipe.fit_head(model, *recipe.cache_features(model, dataset, collate), args)
    preds = recipe.predict(model, dataset, collate)
    targets = [x["target"] for x in items]
    mse = sum((p - t) ** 2 for p, t in zip(preds, targets, strict=True)) / len(targets)
    assert hist[-1]["loss"] < hist[0]["loss"] and mse < 0.02, (hist, preds)


def test_variants_sum_as_defined(records):
    rec = records[0]  # a success, R = 1
    fail = records[1]  # a failure, R = 0
    T = rec.n_steps
    est = [0.1 * i for i in range(T)]
    assert step_values("progress", rec, estimator_values=est) == est
    assert step_values("sparse", rec) == [0.0] * (T - 1) + [1.0]
    assert sum(step_values("mean", rec)) == pytest.approx(1.0)
    rnd = step_values("random", rec, seed=3)
    assert sum(rnd) == pytest.approx(1.0) and all(x > 0 for x in rnd) and len(set(rnd)) == T
    assert rnd == step_values("random", rec, seed=3) != step_values("random", rec, seed=4)
    v = [0.2 + 0.01 * t for t in range(T)]
    assert sum(step_values("mc", rec, mc_values=v)) == pytest.approx(1.0 - v[0])
    assert step_values("no-progress", rec) == [0.0] * T
    assert step_values("no-grounding", rec, estimator_values=est) == est
    assert step_values("public-code", fail, others_mean=0.75) == [-0.75] * fail.n_steps
    assert sum(step_values("sparse", fail)) == 0.0
    with pytest.raises(ValueError, match="estimator values"):
        step_values("progress", rec)
    assert set(VARIANTS) == {
        "progress",
        "sparse",
        "mean",
        "random",
        "mc",
        "no-progress",
        "no-grounding",
        "public-code",
    }


def test_fusion_uses_the_recorded_grounding(alfworld_ready):
    task = load_tasks("alfworld", "train", limit=1)[0]
    rec = record_from_expert(task, n_steps=3, success=False, grounded=[True, False, True])
    # The invalid step's observation is not ALFWorld's "Nothing happens.": only the flag says so.
    rec.steps[1].observation = "Invalid format: no action found."
    p = fuse(rec, "progress", [0.1, 0.2, 0.3], alpha=1.0, beta=0.5)
    assert p.grounding == [1.0, 0.0, 1.0]
    assert p.step_rewards == pytest.approx([0.6, 0.2, 0.8])
    # The public code's string test reads the observation after each step in the conversation; the
    # last step's observation is not in it, so the last step always counts as grounded.
    rec.steps[0].observation = "Nothing happens."
    rec.steps[2].observation = "Nothing happens."
    pc = fuse(rec, "public-code", [0.0] * 3, alpha=1.0, beta=0.5)
    assert pc.grounding == [0.0, 1.0, 1.0]


def test_malformed_ppo_and_step_value_files_name_file_and_line(tmp_path, records):
    good = fuse(records[0], "mean", step_values("mean", records[0]), 1.0, 0.5)
    path = tmp_path / "ppo.jsonl"
    bad = json.loads(good.to_json())
    bad["step_rewards"] = bad["step_rewards"][:-1]
    path.write_text(good.to_json() + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(RecordError, match=rf"{path}:2: field 'step_rewards'"):
        read_ppo_data(path)
    sv = tmp_path / "values.jsonl"
    sv.write_text(
        '{"task_id": "a", "rollout": 0, "values": [0.1]}\n{"task_id": "a", "rollout": 1, "values": ["x"]}\n'
    )
    with pytest.raises(RecordError, match=rf"{sv}:2: field 'values'"):
        read_step_values(sv)


# ---------------------------------------------------------------------------------------------------
# K-fold cross-fitting by task (prm/train.py --cross_fit_folds, prm/infer.py)

FOLDS = 3


def _run_recipe(relpath: str, argv: list[str]):
    from unittest import mock

    recipe = load_recipe(relpath)
    with mock.patch.object(sys, "argv", [relpath, *argv]):
        recipe.main()


def _train_argv(data_dir, out, k: int) -> list[str]:
    return ["--data_dir", str(data_dir), "--model", TINY, "--output_dir", str(out), "--head", "mlp",
            "--backbone", "frozen", "--mlp_hidden", "32", "--num_train_epochs", "40", "--learning_rate", "3e-3",
            "--per_device_train_batch_size", "4", "--logging_steps", "1000", "--save_strategy", "no",
            "--report_to", "none", "--seed", "0", "--cross_fit_folds", str(k), "--dtype", "fp32"]  # fmt: skip


@pytest.fixture(scope="module")
def cross_fit_run(alfworld_ready, tmp_path_factory):
    """4 tasks x 2 rollouts (a success and a cut failure); the in-sample estimator trained first, then
    the same run dir switched to 3-fold cross-fitting. Every ``fit_head`` call of the second run is
    recorded as the pooled rollouts (indices into ``cache_features``' data) it trained on."""
    from unittest import mock

    tasks = load_tasks("alfworld", "train", limit=4)
    recs = []
    for i, t in enumerate(tasks):
        recs.append(record_from_expert(t, success=True))
        recs.append(record_from_expert(t, n_steps=2 + i % 2, success=False, rollout=1))
    root = tmp_path_factory.mktemp("crossfit")
    data = root / "data"
    data.mkdir()
    val_task = tasks[3].task_id
    (data / "train.jsonl").write_text("".join(r.to_json() + "\n" for r in recs if r.task_id != val_task))
    (data / "val.jsonl").write_text("".join(r.to_json() + "\n" for r in recs if r.task_id == val_task))
    out = root / "est"
    _run_recipe("prm/train.py", _train_argv(data, out, 0))
    main_head = (out / "estimator" / "head.safetensors").read_bytes()
    eval_before = json.loads((out / "eval.json").read_text())
    assert not (out / "estimator" / "folds").exists() and "cross_fit" not in eval_before

    recipe = load_recipe("prm/train.py")
    seen = {"cache": None, "fits": []}
    real_cache, real_fit = recipe.cache_features, recipe.fit_head

    def cache_spy(model, dataset, collate, *args):
        feats, targets = real_cache(model, dataset, collate, *args)
        seen["cache"] = (list(dataset.records), feats)
        return feats, targets

    def fit_spy(model, feats, targets, args):
        index = {id(f): i for i, f in enumerate(seen["cache"][1])}
        seen["fits"].append([index[id(f)] for f in feats])
        return real_fit(model, feats, targets, args)

    # The recipe reads the features; the folds (spa_rl.estimator.fitting.cross_fit) fit the heads.
    with (
        mock.patch.object(recipe, "cache_features", cache_spy),
        mock.patch.object(fitting, "fit_head", fit_spy),
    ):
        _run_recipe("prm/train.py", _train_argv(data, out, FOLDS))
    return SimpleNamespace(out=out, data=data, records=recs, main_head=main_head, eval_before=eval_before,
                           seen=seen, root=root)  # fmt: skip


def test_cross_fit_folds_never_train_on_the_tasks_they_score(cross_fit_run):
    run = cross_fit_run
    est = run.out / "estimator"
    # Switching cross-fitting on for a finished run trains only the folds: the main estimator and its
    # train / val report are untouched, and the published folds leave no partial folder behind.
    assert (est / "head.safetensors").read_bytes() == run.main_head
    ev = json.loads((run.out / "eval.json").read_text())
    assert ev["train"] == run.eval_before["train"] and ev["val"] == run.eval_before["val"]
    assert not (run.out / "estimator_folds.partial").exists()

    plan = json.loads((est / "folds" / "folds.json").read_text())
    task_fold = plan["task_fold"]
    tasks = sorted({r.task_id for r in run.records})
    assert plan["folds"] == FOLDS and plan["seed"] == 0
    assert sorted(task_fold) == tasks  # every task in exactly one fold (a dict: one fold per task)
    assert set(task_fold.values()) == set(range(FOLDS))  # no empty fold
    for f in range(FOLDS):
        assert ProgressEstimator.load(est / "folds" / f"fold{f}").cfg.backbone == "frozen"

    # Each fold's head was fitted on exactly the rollouts of the other folds' tasks.
    pooled, _ = run.seen["cache"]
    assert len(pooled) == len(run.records) and len(run.seen["fits"]) == FOLDS
    for f, trained in enumerate(run.seen["fits"]):
        trained_tasks = {pooled[i].task_id for i in trained}
        assert trained_tasks == {t for t in tasks if task_fold[t] != f}
        assert sorted(trained) == [i for i, r in enumerate(pooled) if task_fold[r.task_id] != f]

    # eval.json: an out-of-fold prediction for every rollout, from the fold that holds its task out.
    cf = ev["cross_fit"]
    assert cf["n"] == len(run.records) and cf["folds"] == FOLDS and cf["tasks"] == len(tasks)
    assert {(p["task_id"], p["rollout"]) for p in cf["predictions"]} == {r.key for r in run.records}
    assert all(p["fold"] == task_fold[p["task_id"]] for p in cf["predictions"])
    assert cf["baseline"] == "per fold, predict the mean reward of the other folds"
    for key in ("mse", "baseline_mse", "beats_baseline", "pearson_r", "seconds"):
        assert key in cf
    rewards = [p["reward"] for p in cf["predictions"]]
    baseline = 0.0
    for p in cf["predictions"]:
        others = [q["reward"] for q in cf["predictions"] if q["fold"] != p["fold"]]
        baseline += (sum(others) / len(others) - p["reward"]) ** 2 / len(rewards)
    assert cf["baseline_mse"] == pytest.approx(baseline)
    # A rerun with the same fold count finds everything in place.
    _run_recipe("prm/train.py", _train_argv(run.data, run.out, FOLDS))
    assert json.loads((est / "folds" / "folds.json").read_text()) == plan


def test_infer_cross_fit_scores_each_rollout_with_its_held_out_fold(cross_fit_run, smol_tokenizer):
    from spa_rl.estimator.model import estimate_step_values

    run = cross_fit_run
    est = run.out / "estimator"
    rollouts = run.root / "episodes.jsonl"
    rollouts.write_text("".join(r.to_json() + "\n" for r in run.records))
    cf_out, in_out = run.root / "cf_values.jsonl", run.root / "in_values.jsonl"
    _run_recipe(
        "prm/infer.py", ["--estimator", str(est), "--rollouts", str(rollouts), "--output", str(cf_out)]
    )
    _run_recipe("prm/infer.py", ["--estimator", str(est), "--rollouts", str(rollouts), "--output", str(in_out),
                                 "--in-sample"])  # fmt: skip
    cf_info = json.loads(cf_out.with_suffix(".info.json").read_text())
    in_info = json.loads(in_out.with_suffix(".info.json").read_text())
    assert (cf_info["mode"], cf_info["folds"]) == (f"cross-fit {FOLDS}", FOLDS)
    assert (in_info["mode"], in_info["folds"]) == ("in-sample", 0)
    cf_lines = [json.loads(ln) for ln in cf_out.read_text().splitlines()]
    in_lines = [json.loads(ln) for ln in in_out.read_text().splitlines()]
    assert [set(d) for d in cf_lines] == [set(d) for d in in_lines]  # same output format
    cf, ins = read_step_values(cf_out), read_step_values(in_out)
    task_fold = json.loads((est / "folds" / "folds.json").read_text())["task_fold"]
    main = ProgressEstimator.load(est)
    folds = [ProgressEstimator.load(est / "folds" / f"fold{f}") for f in range(FOLDS)]
    oof = {(p["task_id"], p["rollout"]): p["prediction"] for p in json.loads((run.out / "eval.json").read_text())
           ["cross_fit"]["predictions"]}  # fmt: skip
    for rec in run.records:
        ((own, _),) = estimate_step_values(folds[task_fold[rec.task_id]], smol_tokenizer, [rec])
        ((paper, _),) = estimate_step_values(main, smol_tokenizer, [rec])
        assert cf[rec.key] == pytest.approx(own, abs=1e-5)
        assert ins[rec.key] == pytest.approx(paper, abs=1e-5)
        assert max(abs(a - b) for a, b in zip(cf[rec.key], ins[rec.key], strict=True)) > 1e-4
        assert sum(cf[rec.key]) == pytest.approx(oof[rec.key], abs=1e-4)  # eval.json's held-out prediction
    # A rollout of a task no fold has seen: an error, unless the main estimator scores everything.
    stranger = copy.deepcopy(run.records[0])
    stranger.task_id = "unseen/task"
    extra = run.root / "extra.jsonl"
    extra.write_text(stranger.to_json() + "\n")
    with pytest.raises(SystemExit, match="in no fold.*--in-sample"):
        _run_recipe("prm/infer.py", ["--estimator", str(est), "--rollouts", str(extra), "--output",
                                     str(run.root / "x.jsonl")])  # fmt: skip
    _run_recipe("prm/infer.py", ["--estimator", str(est), "--rollouts", str(extra), "--output",
                                 str(run.root / "x.jsonl"), "--in-sample"])  # fmt: skip
    assert read_step_values(run.root / "x.jsonl")[stranger.key] == pytest.approx(
        ins[run.records[0].key], abs=1e-5
    )


def test_a_frozen_backbone_reads_each_rollout_once(cross_fit_run, monkeypatch):
    """prm/train.py keeps the frozen backbone's features; the rerun that added the folds and prm/infer.py
    --feature-cache score from them without a backbone pass, and give the c_t a backbone pass gives."""
    from spa_rl.estimator.feature_store import FILE, load_features, save_features

    run = cross_fit_run
    est, store = run.out / "estimator", run.out / "features"
    n = len(run.records)
    assert (run.eval_before["features"], run.eval_before["features_reused"]) == (n, 0)
    assert json.loads((run.out / "eval.json").read_text())["cross_fit"]["features_reused"] == n
    rollouts = run.root / "episodes_store.jsonl"
    rollouts.write_text("".join(r.to_json() + "\n" for r in run.records))

    calls = []
    real = ProgressEstimator.backbone_hidden
    monkeypatch.setattr(ProgressEstimator, "backbone_hidden", lambda *a: calls.append(1) or real(*a))
    outs = {}
    for mode in ("in-sample", "cross-fit"):
        for cached in (False, True):
            calls.clear()
            out = run.root / f"store_{mode}_{cached}.jsonl"
            argv = ["--estimator", str(est), "--rollouts", str(rollouts), "--output", str(out)]
            argv += ["--in-sample"] if mode == "in-sample" else []
            _run_recipe("prm/infer.py", argv + (["--feature-cache", str(store)] if cached else []))
            info = json.loads(out.with_suffix(".info.json").read_text())
            assert info["from_feature_cache"] == (n if cached else 0)
            assert (len(calls) == 0) == cached  # no backbone pass when every rollout is in the store
            outs[mode, cached] = read_step_values(out)
        for key, values in outs[mode, False].items():
            assert outs[mode, True][key] == pytest.approx(values, abs=1e-5)

    # The store answers only for its own backbone and dtype; a damaged one is ignored, not fatal.
    cfg = ProgressEstimator.load(est).cfg
    assert len(load_features(store, cfg.base_model, "fp32")) == n
    assert load_features(store, cfg.base_model, "bf16") == {}
    assert load_features(store, str(REPO / "models" / "smollm2-135m-instruct"), "fp32") == {}
    other = run.root / "other_store"
    save_features(other, cfg.base_model, "fp32", {"k": torch.ones(2, 3)})
    (other / FILE).write_bytes((other / FILE).read_bytes()[:40])
    assert load_features(other, cfg.base_model, "fp32") == {}


@pytest.mark.parametrize("k", [1, -2, 5])
def test_bad_cross_fit_fold_count_is_a_clear_error(cross_fit_run, tmp_path, k):
    with pytest.raises(SystemExit, match=rf"--cross_fit_folds {k}:.*2 <= K <= the number of tasks") as e:
        _run_recipe("prm/train.py", _train_argv(cross_fit_run.data, tmp_path / "est", k))
    if k == 5:
        assert "the data has 4 tasks" in str(e.value)
    assert not (tmp_path / "est" / "estimator").exists()


def test_an_estimator_published_without_eval_json_gets_it_on_rerun(alfworld_ready, tmp_path):
    """The estimator folder marks the stage done, so it is written last; a folder left by a run that
    stopped before its evaluation gets eval.json on the next run, without training again."""
    tasks = load_tasks("alfworld", "train", limit=2)
    recs = [record_from_expert(t, success=True) for t in tasks]
    recs += [record_from_expert(t, n_steps=2, success=False, rollout=1) for t in tasks]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(
        "".join(r.to_json() + "\n" for r in recs if r.task_id != tasks[1].task_id)
    )
    (data / "val.jsonl").write_text(
        "".join(r.to_json() + "\n" for r in recs if r.task_id == tasks[1].task_id)
    )
    out = tmp_path / "est"
    _run_recipe("prm/train.py", _train_argv(data, out, 0))
    first = json.loads((out / "eval.json").read_text())
    head = (out / "estimator" / "head.safetensors").read_bytes()
    (out / "eval.json").unlink()
    _run_recipe("prm/train.py", _train_argv(data, out, 0))
    again = json.loads((out / "eval.json").read_text())
    assert (out / "estimator" / "head.safetensors").read_bytes() == head
    assert "after the fact" in again["note"] and "train_seconds" not in again
    for split in ("train", "val"):
        assert again[split]["mse"] == pytest.approx(first[split]["mse"], rel=1e-5)
