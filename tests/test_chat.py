import copy

import pytest

from spa_rl.agent.chat import ChatTemplateError, end_of_turn_ids, render_chat
from spa_rl.agent.prompts import get_prompt

# A Llama-3-style template (header tokens, <|eot_id|>, bos in the template), exercised with the
# SmolLM2 tokenizer: the markers are plain text there, which is enough to check the span logic.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def conversation():
    msgs = get_prompt("alfworld").build("You are in a room.\n\nYour task is to: put a pen on the desk.")
    prefix = len(msgs)
    msgs += [
        {"role": "assistant", "content": "Thought: look for a pen.\nAction: go to desk 1"},
        {"role": "user", "content": "On the desk 1, you see a pen 2."},
        {"role": "assistant", "content": "Thought: take it.\nAction: take pen 2 from desk 1"},
    ]
    return msgs, prefix


@pytest.fixture(params=["chatml", "llama3"])
def tok(request, smol_tokenizer):
    t = copy.deepcopy(smol_tokenizer)
    if request.param == "llama3":
        t.chat_template = LLAMA3_TEMPLATE
    return t


def test_masks_and_turn_ends(tok):
    msgs, prefix = conversation()
    r = render_chat(tok, msgs, train_from=prefix)
    assert len(r.input_ids) == len(r.assistant_mask)
    assert len(r.turn_ends) == 2 == len(r.turn_starts)
    agent = [m["content"] for m in msgs[prefix:] if m["role"] == "assistant"]
    for s, e, content in zip(r.turn_starts, r.turn_ends, agent, strict=True):
        text = tok.decode(r.input_ids[s : e + 1])
        assert text.startswith(content.strip())
        assert text[len(content.strip()) :].strip() in ("<|im_end|>", "<|eot_id|>")
        assert all(r.assistant_mask[s : e + 1])
        assert not r.assistant_mask[s - 1] and (e + 1 == len(r.assistant_mask) or not r.assistant_mask[e + 1])
    # The mask holds exactly the two agent turns: no prompt, example or observation tokens.
    assert sum(r.assistant_mask) == sum(e - s + 1 for s, e in zip(r.turn_starts, r.turn_ends, strict=True))


def test_ids_equal_whole_text_tokenization(tok):
    msgs, prefix = conversation()
    r = render_chat(tok, msgs, train_from=prefix)
    whole = tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"]
    assert tok.decode(r.input_ids) == tok.decode(whole)


def test_train_from_zero_includes_example_turns(tok):
    msgs, prefix = conversation()
    n_assistant = sum(m["role"] == "assistant" for m in msgs)
    assert len(render_chat(tok, msgs, train_from=0).turn_ends) == n_assistant > 2


def test_truncation_drops_partial_turns(tok):
    msgs, prefix = conversation()
    full = render_chat(tok, msgs, train_from=prefix)
    cut = full.turn_ends[1] - 3  # inside the second turn
    r = render_chat(tok, msgs, train_from=prefix, max_length=cut)
    assert r.truncated and len(r.input_ids) == cut
    assert r.turn_ends == full.turn_ends[:1]
    assert sum(r.assistant_mask) == full.turn_ends[0] - full.turn_starts[0] + 1


def test_end_of_turn_ids(smol_tokenizer):
    assert smol_tokenizer.convert_tokens_to_ids("<|im_end|>") in end_of_turn_ids(smol_tokenizer)


def test_template_that_rewrites_history_is_rejected(smol_tokenizer):
    t = copy.deepcopy(smol_tokenizer)
    # Renders only the last assistant turn's content: earlier turns change when a turn is added.
    t.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}[old]{% else %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    msgs, prefix = conversation()
    with pytest.raises(ChatTemplateError):
        render_chat(t, msgs, train_from=prefix)


def test_bad_message_is_rejected(smol_tokenizer):
    with pytest.raises(ValueError, match="message 1"):
        render_chat(smol_tokenizer, [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
