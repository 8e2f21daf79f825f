"""The WebShop engine on the real 1000-product data: data set-up, search, pages, actions, reward, expert."""

import json
from dataclasses import replace

import pytest
from conftest import replay_experts

from envs import EnvError, expert_trajectory, load_tasks, make_env
from envs.base import Task
from envs.paths import data_dir, default_mirror
from envs.webshop.expert import expert_actions, search_query
from envs.webshop.normalize import normalize_color
from envs.webshop.reward import attribute_matches, compute_reward, legacy_option_matches
from envs.webshop.search import tokenize

pytestmark = pytest.mark.usefixtures("webshop_ready")


def task(split, goal_id):
    return Task(env="webshop", task_id=goal_id, split=split)


# --- data ----------------------------------------------------------------------------------------
def test_splits(catalog):
    assert len(catalog.products) == 1000
    train, test, human = (load_tasks("webshop", s) for s in ("train", "test", "human"))
    assert (len(train), len(test), len(human)) == (3353, 200, 13)
    test_products = {catalog.goal("test", t.task_id).asin for t in test}
    train_products = {catalog.goal("train", t.task_id).asin for t in train}
    assert len(test_products) == 200 and not test_products & train_products  # held-out products
    assert {t.task_type for t in test} <= {"beauty", "electronics", "fashion", "garden", "grocery"}
    assert [t.task_id for t in load_tasks("webshop", "test", limit=3)] == [t.task_id for t in test[:3]]
    with pytest.raises(EnvError, match="unknown WebShop split"):
        load_tasks("webshop", "dev")


def test_goal_text_and_price_bound(catalog):
    g = catalog.goal("test", "B09S6LZYHQ-3")
    assert g.goal_options == {"color": "yellow", "size": "small"}
    assert g.instruction_text.endswith(
        "with color: yellow, and size: small, and price lower than 30.00 dollars"
    )
    assert g.price_upper == 30.0 and catalog.products[g.asin].price < 30.0


@pytest.mark.skipif(default_mirror() is None, reason="needs the data mirror")
def test_rebuild_from_mirror_is_identical_and_matches_webshops_index():
    from envs.webshop.prepare import MIRROR_FILES, _inputs_from_mirror, build

    raw, attrs, human, docs = _inputs_from_mirror(default_mirror(), print)
    # build() also checks every product's search text against the documents of WebShop's own index.
    products, goals, documents, counts = build(raw, attrs, human, docs)
    assert counts["generated_goals"] == 6910 and counts["goal_products"] == 415
    root = data_dir() / "webshop"
    assert json.loads((root / "goals.json").read_text()) == json.loads(json.dumps(goals))
    assert json.loads((root / "products.json").read_text()) == json.loads(json.dumps(products))
    assert MIRROR_FILES["index"].endswith(".zst") and len(documents) == 1000


# --- search --------------------------------------------------------------------------------------
def test_tokenize():
    assert tokenize("Women's 6.76 Fl Oz Bottles of L'Eau, for the BEST") == [
        "women",
        "6.76",
        "fl",
        "oz",
        "bottl",
        "l'eau",
        "best",
    ]
    assert tokenize("the and of") == []


def test_search_is_deterministic(catalog):
    hits = catalog.search("men's sandals rubber sole black")
    assert hits[:5] == ["B008QYOGZ2", "B09QXF3V3X", "B09F2MFG1Q", "B082MT9162", "B07RPMCNKD"]
    assert len(hits) == 50 and len(set(hits)) == 50
    assert catalog.search("men's sandals rubber sole black") == hits
    assert catalog.search("the of and") == []
    assert catalog.search("xylophone") == []  # only products matching a query term are returned


# --- pages and actions ---------------------------------------------------------------------------
def test_page_transitions(catalog):
    env = make_env("webshop")
    obs = env.reset(task("test", "B09S6LZYHQ-3"))
    assert obs.startswith("WebShop [SEP] Instruction: [SEP] Find me") and obs.endswith(" [SEP] Search")
    r = env.step("search[women's summer dress yellow]")
    assert r.grounded and not r.done and r.reward == 0.0
    assert " [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] " in r.observation
    assert "< Prev" not in r.observation
    first_page = r.observation
    r = env.step("click[Next >]")
    assert "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next > [SEP]" in r.observation
    r = env.step("click[< Prev]")
    assert r.observation == first_page
    asin = env.session.results[0]
    r = env.step(f"click[{asin.lower()}]")  # clicks ignore letter case
    product = catalog.products[asin]
    assert (
        r.observation.startswith("Instruction: [SEP] ")
        and " [SEP] Back to Search [SEP] < Prev [SEP] " in r.observation
    )
    assert r.observation.endswith(
        f"{product.title} [SEP] Price: {product.price_tag} [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now"
    )
    item_page = r.observation
    r = env.step("click[Features]")
    assert r.observation.endswith(
        " [SEP] < Prev [SEP] " + " [SEP] ".join(b.strip() for b in product.bullet_points)
    )
    r = env.step("click[< Prev]")
    assert r.observation == item_page
    r = env.step("click[Reviews]")
    assert r.observation.endswith("Back to Search [SEP] < Prev")  # no reviews in the 1000-product data
    env.step("click[< Prev]")
    r = env.step("click[< Prev]")  # item page -> its results page
    assert r.observation == first_page
    r = env.step("click[Back to Search]")
    assert r.observation == obs and r.done and r.info["truncated"]  # 10th step: the limit
    env.close()


def test_invalid_actions_change_nothing():
    env = make_env("webshop", max_steps=20)
    first = env.reset(task("test", "B09S6LZYHQ-3"))
    for bad in ("click[Search]", "click[Buy Now]", "buy it", "search[]", "click[B09S6LZYHQ]"):
        r = env.step(bad)
        assert r.observation == "Invalid action!" and not r.grounded and not r.done
    assert env.site.render(env.session) == first
    env.step("search[yellow dress]")
    on_page = set(env.session.results[:10])
    other = next(a for a in env.session.results[10:] if a not in on_page)
    for bad in (f"click[{other}]", "search[red dress]", "click[Description]", "click[< Prev]"):
        assert not env.step(bad).grounded
    assert env.available_actions()["has_search_bar"] is False
    r = env.step("click[Back to Search]")
    assert r.grounded and env.available_actions() == {"has_search_bar": True, "clickables": []}
    env.close()


def test_step_limit_and_misuse():
    env = make_env("webshop", max_steps=3)
    with pytest.raises(EnvError):
        env.step("search[x]")
    env.reset(task("test", "B09S6LZYHQ-3"))
    results = [env.step("click[nothing]") for _ in range(3)]
    assert [r.done for r in results] == [False, False, True] and results[-1].reward == 0.0
    assert results[-1].info["truncated"] and not results[-1].success
    with pytest.raises(EnvError):
        env.step("search[x]")
    with pytest.raises(EnvError):
        env.reset(Task(env="alfworld", task_id="x", split="test"))
    with pytest.raises(EnvError, match="no WebShop goal"):
        env.reset(task("test", "nope"))


# --- reward --------------------------------------------------------------------------------------
def buy(goal_id, asin, options, split="test"):
    """Search the product's title, open it, choose ``options``, buy; the final StepResult."""
    env = make_env("webshop")
    env.reset(task(split, goal_id))
    env.step(f"search[{env.catalog.products[asin].title}]")
    assert env.step(f"click[{asin}]").grounded
    for value in options:
        assert env.step(f"click[{value}]").grounded
    r = env.step("click[Buy Now]")
    env.close()
    return r


def test_reward_of_goal_product_and_its_variations(catalog):
    g = catalog.goal("test", "B09S6LZYHQ-3")  # 2 attributes, options color + size, bound $30
    right = buy(g.goal_id, g.asin, ["yellow", "small"])
    assert right.done and right.success and right.reward == 1.0 and right.grounded
    assert right.info["bought"] == {"asin": g.asin, "options": {"color": "yellow", "size": "small"}}
    wrong = buy(g.goal_id, g.asin, ["pink", "small"])  # one option of two wrong: (2 + 1 + 1) / 5
    assert wrong.reward == pytest.approx(0.8) and not wrong.success and wrong.done
    assert buy(g.goal_id, g.asin, []).reward == pytest.approx(0.6)  # no option chosen: (2 + 0 + 1) / 5
    product = catalog.products[g.asin]
    over = compute_reward(product, replace(g, price_upper=product.price - 1), dict(g.goal_options))
    assert over.reward == pytest.approx(0.8) and not over.r_price
    other = catalog.goal("test", "B09QQP3356-3").asin  # a men's shirt instead of the women's dress
    info = compute_reward(catalog.products[other], g, {"color": "yellow", "size": "small"})
    assert info.reward < 0.5 and not info.query_match


def test_fuzzy_attribute_matching(catalog):
    g = catalog.goal("test", "B09S6LZYHQ-3")
    bare = replace(
        catalog.products[g.asin], title="t", description="", bullet_points=(), attributes=("easy install",)
    )
    assert attribute_matches(bare, replace(g, attributes=("easy to install",))) == 1  # token-set ratio 100
    assert attribute_matches(bare, replace(g, attributes=("hand wash",))) == 0
    in_title = replace(bare, title="Dress, Hand Wash Only")
    assert attribute_matches(in_title, replace(g, attributes=("hand wash",))) == 1  # found in the title


def test_color_normalisation_and_option_matching(catalog):
    assert normalize_color("dark navy blue") == "blue"  # the first color of WebShop's list wins
    assert normalize_color("light grey") == "grey"
    assert normalize_color("standard") == "tan"  # WebShop scans every option value, not only colors
    assert normalize_color("x-large") == "x-large"
    bare = replace(catalog.products["B09S6LZYHQ"], title="t", description="", bullet_points=())
    goal = catalog.goal("test", "B09S6LZYHQ-3")

    def legacy(wanted, bought):  # the legacy mode's rules (original and corrected: test_webshop_reward.py)
        return legacy_option_matches(bare, replace(goal, goal_options=tuple(wanted)), bought)

    assert legacy(["navy blue"], {"color": "dark blue"}) == 1
    assert legacy(["black"], {"color": "white"}) == 0
    assert legacy(["2 pack"], {"style": "pack of 2"}) == 1  # fuzzy for other types
    assert legacy(["large"], {"size": "x-large"}) == 0  # exact for size
    assert legacy(["x-large"], {"size": "x-large"}) == 1


# --- expert --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "split,index", [("test", 0), ("test", 199), ("train", 0), ("train", 3000), ("human", 5)]
)
def test_expert_episodes_through_the_env(split, index):
    t = load_tasks("webshop", split)[index]
    first, pairs = expert_trajectory(t)
    assert first.startswith("WebShop [SEP] Instruction: [SEP] ")
    env = make_env("webshop")
    assert env.reset(t) == first
    results = [env.step(a) for a, _ in pairs]
    assert [r.observation for r in results] == [o for _, o in pairs]
    assert all(r.grounded for r in results) and results[-1].success and results[-1].reward == 1.0
    assert not any(r.done for r in results[:-1]) and len(results) <= 10
    env.close()


def test_expert_refines_or_pages_when_needed(catalog):
    env = make_env("webshop")
    kinds = set()
    for g in catalog.goals["train"][:400]:
        acts = expert_actions(catalog, g, 10)
        hits = catalog.search(search_query(g))
        if "click[Back to Search]" in acts:
            kinds.add("refined")
            assert g.asin not in hits[:30]
        elif "click[Next >]" in acts:
            kinds.add("paged")
            assert g.asin in hits[10:30]
    assert kinds == {"refined", "paged"}
    env.close()


def test_expert_conversation_and_prompt_example():
    from spa_rl.agent.experts import expert_messages
    from spa_rl.agent.prompts import get_prompt
    from spa_rl.agent.prompts.webshop import EXAMPLE_GOAL_ID, EXAMPLE_TASK, EXAMPLE_TURNS
    from spa_rl.agent.react import parse_reply

    # The prompt's example is a train goal, and its observations are still the engine's.
    first, pairs = expert_trajectory(task("train", EXAMPLE_GOAL_ID))
    assert first == EXAMPLE_TASK
    assert [(a, o) for _, a, o in EXAMPLE_TURNS] == pairs
    msgs, prefix = expert_messages(load_tasks("webshop", "test", limit=2)[1])
    assert msgs[:prefix] == get_prompt("webshop").build(msgs[prefix - 1]["content"].split("\n")[-1])
    replies = [parse_reply(m["content"]) for m in msgs[prefix:] if m["role"] == "assistant"]
    assert replies[0].action.startswith("search[") and replies[-1].action == "click[Buy Now]"
    assert all(r.thought for r in replies)
    assert "color black" in replies[2].thought


def test_expert_through_the_rollout_runner(tmp_path):
    tasks = load_tasks("webshop", "test", limit=3)
    experts = {t.task_id: expert_trajectory(t) for t in tasks}
    actions = {k: [a for a, _ in v[1]] for k, v in experts.items()}
    replay_experts("webshop", tasks, actions, tmp_path / "e.jsonl", batch_size=3)
