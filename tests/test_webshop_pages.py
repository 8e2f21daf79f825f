"""WebShop's text-mode pages, page by page, exactly as WebShop's text environment shows them.

WebShop's text mode (``WebAgentTextEnv(observation_mode="text")``, the mode ETO and SPA-RL run) renders
each page from its HTML template and turns it into text: every text node of the page (BeautifulSoup,
``html.parser``) whose parent is not style/script/head/title/meta, except the bare "\\n" nodes, stripped
and joined with " [SEP] ". BeautifulSoup collapses a node of ASCII whitespace only to "\\n" (when it holds
a newline: dropped) or to " " (kept, stripped to an empty text). The templates are the text-agent
versions (web_agent_site/templates/*.html of the WebShop release the text agents used). Each expected
string below is derived by hand from its template, quoted in the comment above it.

Episodes are played on the real catalogue with real goals; searches use words that match one product,
so that the expected pages do not depend on the ranking of a longer result list.
"""

import pytest

from envs import make_env
from envs.base import Task
from envs.webshop.engine import options_json, visible_texts

pytestmark = pytest.mark.usefixtures("webshop_ready")


def play(split, goal_id, actions, max_steps=30):
    """The first observation and each action's StepResult; every action must be grounded."""
    env = make_env("webshop", max_steps=max_steps)
    first = env.reset(Task(env="webshop", task_id=goal_id, split=split))
    results = []
    for a in actions:
        r = env.step(a)
        assert r.grounded, a
        results.append(r)
    env.close()
    return first, results


# The goal of train goal B07NZ173GY-3 (FitFlop Men's Hollis Neoprene Sport Sandal, $26.44 to $69.99).
GOAL = (
    "Find me day comfort men's sandals with rubber sole with color: black, and size: 13, "
    "and price lower than 80.00 dollars"
)
# Every page but the search and done pages starts with
#   <h4>Instruction:<br>{{ instruction_text }}</h4>   -> "Instruction:", the goal (two text nodes)
#   <button ...>Back to Search</button>
HEAD = f"Instruction: [SEP] {GOAL} [SEP] Back to Search"
# item_page.html: HEAD, <button>&lt; Prev</button>, then per option type <h4>{{ option_name }}</h4> and
# a <label>{{ option_content }}</label> per value (the radio inputs hold no text), <h2>{{ Title }}</h2>,
# <h4>Price: {{ Price }}</h4>, <h4>Rating: {{ Rating }}</h4> (no ratings in the 1000-product data:
# "N.A."), the Description / Features / Reviews buttons and <button>Buy Now</button>. The <script> that
# checks the chosen options' radio buttons is not visible text, so choosing options changes nothing.
ITEM = (
    f"{HEAD} [SEP] < Prev [SEP] size [SEP] 11 [SEP] 12 [SEP] 12.5 [SEP] 13 [SEP] color [SEP] black "
    "[SEP] light grey [SEP] FitFlop Men's Hollis Neoprene Sport Sandal [SEP] Price: $26.44 to $69.99 "
    "[SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now"
)


def test_every_page_of_an_episode():
    first, r = play(
        "train",
        "B07NZ173GY-3",
        [
            "search[fitflop]",  # 0
            "click[Next >]",  # 1
            "click[< Prev]",  # 2
            "click[B07NZ173GY]",  # 3
            "click[Description]",  # 4
            "click[< Prev]",  # 5
            "click[Features]",  # 6
            "click[< Prev]",  # 7
            "click[Reviews]",  # 8
            "click[< Prev]",  # 9
            "click[13]",  # 10
            "click[black]",  # 11
            "click[Buy Now]",  # 12
        ],
    )
    # search_page.html: <h2>WebShop</h2> <h4>Instruction: <br>{{ instruction_text }}</h4>
    # <button ...><i ...></i>Search</button> (the search <input> holds no text)
    assert first == f"WebShop [SEP] Instruction: [SEP] {GOAL} [SEP] Search"

    # results_page.html: HEAD, <h3>Page {{page}} (Total results: {{total}})</h3>; on page 1 only
    # <button>Next &gt;</button> (the template shows it on every page, even when no result follows);
    # then per product <a class="product-link">{{item.asin}}</a>, <h4>{{item.Title}}</h4>,
    # <h5>{{item.Price}}</h5> (a price range reads "$a to $b"; the commented-out fields are comments).
    page_1 = (
        f"{HEAD} [SEP] Page 1 (Total results: 1) [SEP] Next > [SEP] B07NZ173GY "
        "[SEP] FitFlop Men's Hollis Neoprene Sport Sandal [SEP] $26.44 to $69.99"
    )
    assert r[0].observation == page_1
    # Page 2 of a single result: {% if page > 1 %} shows &lt; Prev and Next &gt;, and no product.
    assert r[1].observation == f"{HEAD} [SEP] Page 2 (Total results: 1) [SEP] < Prev [SEP] Next >"
    assert r[2].observation == page_1

    assert r[3].observation == ITEM
    # description_page.html: HEAD, < Prev, <p class="product-info">{{ Description }}</p>
    assert r[4].observation == (
        f"{HEAD} [SEP] < Prev [SEP] These cut-out kicks deliver a 'hole' lot: the sporty athleisure "
        "vibe of sneakers and the breeziness of sandals (while keeping your toes out of sight). Then "
        "there are cool style details"
    )
    assert r[5].observation == ITEM  # < Prev on a sub page: back to the item page
    # features_page.html: HEAD, < Prev, per bullet point <li><p class="product-info"> {{bulletpoint}}</p>
    # (one node each, stripped: the data's trailing spaces go)
    assert r[6].observation == (
        f"{HEAD} [SEP] < Prev [SEP] Imported [SEP] Rubber sole [SEP] on FitFlop’s superlight, "
        "hyper-flexible Anatomiflex midsoles for all-day comfort [SEP] made of 'bouncy' high-rebound "
        "cushioning that feels great to walk on [SEP] average to wide fit [SEP] APMA Seal of "
        "Acceptance, for footwear found to promote good foot health"
    )
    # review_page.html: HEAD, < Prev, then per review "title", score, body: none in this data.
    assert r[8].observation == f"{HEAD} [SEP] < Prev"
    assert r[10].observation == r[11].observation == ITEM  # chosen options are not shown as text

    # done_page.html as the text env renders it: map_action_to_html('click[Buy Now]') is given the
    # reward, the ASIN and the options only, so {{ mturk_code }}, {{ purchased_attrs }}, {{ category }},
    # {{ query }}, {{ product_category }}, {{ goal | pprint }} and {{ reward_info | pprint }} print
    # "None" and {{ goal.asin }} etc. print nothing (an empty <pre> has no text node). The
    # display:none block and the <h4 hidden> are text nodes all the same:
    #   <h1>Thank you for shopping with us!</h1> <h3>Your code: </h3>
    #   <p><pre>{{ mturk_code }}</pre> (Paste it in your MTurk interface.)</p>
    #   <h2>Purchased</h2> <h4>asin<pre>{{ asin }}</pre> <h4>options<pre>{{ options | tojson }}</pre>
    #   <h4>attrs<pre>..</pre> <h4>category<pre>..</pre> <h4>query<pre>..</pre>
    #   <h4>product category<pre>..</pre> <h2>Target</h2> <h4>asin<pre>{{ goal.asin }}</pre> ...
    #   <h4>instuction text<pre>..</pre> (sic) ... <h4>Goal <div><pre>{{ goal | pprint }}</pre>
    #   <h2>Reward</h2> <h3>Your score (min 0.0, max 1.0)<pre>{{ reward }}</pre></h3>
    #   <h4 hidden>Reward Details <div><pre>{{ reward_info | pprint }}</pre>
    # tojson is Flask's: sorted keys.
    assert r[12].done and r[12].success and r[12].reward == 1.0
    assert r[12].observation == (
        "Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk "
        "interface.) [SEP] Purchased [SEP] asin [SEP] B07NZ173GY [SEP] options [SEP] "
        '{"color": "black", "size": "13"} [SEP] attrs [SEP] None [SEP] category [SEP] None [SEP] query '
        "[SEP] None [SEP] product category [SEP] None [SEP] Target [SEP] asin [SEP] options [SEP] attrs "
        "[SEP] price upper [SEP] instuction text [SEP] category [SEP] product category [SEP] query [SEP] "
        "Goal [SEP] None [SEP] Reward [SEP] Your score (min 0.0, max 1.0) [SEP] 1.0 [SEP] Reward "
        "Details [SEP] None"
    )


def test_empty_description_empty_feature_and_no_options():
    # Train goal B08DZ2593Y-0: a toothpaste with no options, an empty description and one empty
    # bullet point.
    first, r = play(
        "train",
        "B08DZ2593Y-0",
        ["search[supersmile]", "click[b08dz2593y]", "click[Description]", "click[< Prev]"]
        + ["click[Features]", "click[< Prev]", "click[Buy Now]"],
    )
    goal = first.removeprefix("WebShop [SEP] Instruction: [SEP] ").removesuffix(" [SEP] Search")
    head = f"Instruction: [SEP] {goal} [SEP] Back to Search [SEP] < Prev"
    title = (
        "Supersmile Extra White Professional Teeth Whitening Toothpaste - Clinically Proven to Remove "
        "Stains & Whiten Teeth Up to 9 Shades - No Sensitivity (Triple Mint, 7 Oz), 7 oz."
    )
    # No option types: the item page goes from < Prev straight to the title.
    assert r[1].observation == (
        f"{head} [SEP] {title} [SEP] Price: $55.0 [SEP] Rating: N.A. [SEP] Description [SEP] Features "
        "[SEP] Reviews [SEP] Buy Now"
    )
    # <p class="product-info">{{ Description }}</p> with "": the element has no text node at all.
    assert r[2].observation == head
    # <p class="product-info"> {{bulletpoint}}</p> with "": the node " " is whitespace without a
    # newline, so BeautifulSoup keeps it as " ", the filter (t != "\n") keeps it, and it is stripped
    # to an empty text: the observation ends with " [SEP] ".
    assert r[4].observation == f"{head} [SEP] "
    # No option chosen: {{ {} | tojson }} is "{}".
    assert (
        " [SEP] asin [SEP] B08DZ2593Y [SEP] options [SEP] {} [SEP] attrs [SEP] None [SEP] "
        in r[6].observation
    )


def test_done_page_writes_options_as_flasks_tojson():
    # Test goal B0851Y9BDC-1 asks for size 15.7'' x 3.5''. Flask's tojson writes ' as \u0027 (and
    # <, >, & as \u003c, \u003e, \u0026) so that the JSON is safe inside HTML.
    _, r = play(
        "test",
        "B0851Y9BDC-1",
        ["search[comal]", "click[B0851Y9BDC]", "click[15.7'' x 3.5'']", "click[Buy Now]"],
    )
    assert (
        "[SEP] size [SEP] 15.7'' x 1.25'' [SEP] 15.7'' x 3.5'' [SEP] 21.25'' x 2.12'' [SEP]"
        in r[1].observation
    )
    done = r[-1]
    assert done.done and done.reward == 1.0
    assert (
        "[SEP] asin [SEP] B0851Y9BDC [SEP] options [SEP] "
        '{"size": "15.7\\u0027\\u0027 x 3.5\\u0027\\u0027"} [SEP] attrs [SEP]' in done.observation
    )
    assert done.observation.endswith(
        "[SEP] Your score (min 0.0, max 1.0) [SEP] 1.0 [SEP] Reward Details [SEP] None"
    )


def test_next_page_is_always_offered():
    env = make_env("webshop", max_steps=30)
    env.reset(Task(env="webshop", task_id="B07NZ173GY-3", split="train"))
    # No result: "Page 1 (Total results: 0)", and Next > all the same (the template's {% else %} branch).
    assert env.step("search[xylophone]").observation == f"{HEAD} [SEP] Page 1 (Total results: 0) [SEP] Next >"
    assert "next >" in env.available_actions()["clickables"]
    assert (
        env.step("click[Next >]").observation
        == f"{HEAD} [SEP] Page 2 (Total results: 0) [SEP] < Prev [SEP] Next >"
    )
    env.step("click[Back to Search]")
    # A full result list: page 5 shows results 41-50 and still offers Next >, to an empty page 6.
    env.step("search[women]")  # a word in more than 50 products
    assert len(env.session.results) == 50
    for _ in range(4):
        env.step("click[Next >]")
    page_5 = env.site.render(env.session)
    assert f"{HEAD} [SEP] Page 5 (Total results: 50) [SEP] < Prev [SEP] Next > [SEP] " in page_5
    assert page_5.count(" [SEP] $") == 10
    assert env.step("click[Next >]").observation == (
        f"{HEAD} [SEP] Page 6 (Total results: 50) [SEP] < Prev [SEP] Next >"
    )
    env.close()


def test_text_node_rules():
    # "" makes no node; ASCII whitespace with a newline collapses to "\n" (dropped); without one to " "
    # (an empty text); other nodes are stripped, Unicode whitespace included (Python's str.strip).
    assert visible_texts(["a", "", "\n   ", " \t ", "  b  ", "\xa0", " c\n"]) == ["a", "", "b", "", "c"]
    assert options_json({"size": "<a & b's>", "color": "é"}) == (
        '{"color": "\\u00e9", "size": "\\u003ca \\u0026 b\\u0027s\\u003e"}'
    )


def test_prompt_example_replays_on_the_engine():
    from spa_rl.agent.prompts.webshop import EXAMPLE_GOAL_ID, EXAMPLE_TASK, EXAMPLE_TURNS

    first, results = play("train", EXAMPLE_GOAL_ID, [a for _, a, _ in EXAMPLE_TURNS], max_steps=10)
    # After a change to the pages or the ranking: python tools/regen_webshop_example.py
    assert first == EXAMPLE_TASK
    assert [r.observation for r in results] == [o for _, _, o in EXAMPLE_TURNS]
    assert results[-1].done and results[-1].success
