from spa_rl.agent.react import format_turn, parse_reply, truncate_reply


def test_plain_reply():
    p = parse_reply("Thought: find the apple.\nAction: go to fridge 1")
    assert p.thought == "find the apple." and p.action == "go to fridge 1"


def test_whitespace_and_case():
    p = parse_reply("  thought :  hmm \n\n   ACTION:    open drawer 2   \n")
    assert p.action == "open drawer 2" and p.thought == "hmm"


def test_no_thought_label_and_markdown():
    assert parse_reply("I should look.\n**Action**: look").action is None  # bold label is not a label
    assert parse_reply("I should look.\n- Action: look").action == "look"
    assert parse_reply("I should look.\nAction: look").thought == "I should look."


def test_missing_or_empty_action():
    assert parse_reply("Thought: I am thinking very hard").action is None
    assert parse_reply("Thought: x\nAction:   ").action is None
    assert parse_reply("").action is None


def test_first_action_wins_and_continuation_is_cut():
    text = "Thought: a\nAction: go to desk 1\nObservation: On the desk 1...\nThought: b\nAction: take pen 1"
    assert parse_reply(text).action == "go to desk 1"
    assert truncate_reply(text) == "Thought: a\nAction: go to desk 1"


def test_quotes_stripped_and_roundtrip():
    assert parse_reply('Action: "look"').action == "look"
    p = parse_reply(format_turn("plan", "inventory"))
    assert (p.thought, p.action) == ("plan", "inventory")
