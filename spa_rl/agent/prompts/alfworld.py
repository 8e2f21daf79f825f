"""ALFWorld prompt. The example is a real training game (a cloth-cleaning task); the observations are
the game's own text, the thoughts are written for this project."""

from spa_rl.agent.prompts import PromptSpec

INSTRUCTION = """You are an agent doing a household task in a text-based house. Each turn you read what you observe, think briefly, and do exactly one action. Always answer in this form:
Thought: <a short plan or reasoning>
Action: <one action>

The actions you can use (fill in the parts in parentheses):
- go to (receptacle)
- open (receptacle)
- close (receptacle)
- take (object) from (receptacle)
- put (object) in/on (receptacle)
- use (object)
- clean (object) with (receptacle)
- heat (object) with (receptacle)
- cool (object) with (receptacle)
- examine (object or receptacle)
- inventory
- look
Write names exactly as the observations show them, number included (for example "apple 1", "countertop 2"). You can hold one object at a time. An action that cannot be done is answered with "Nothing happens."."""

EXAMPLE_TASK = (
    "You are in the middle of a room. Looking quickly around you, you see a bathtubbasin 1, a countertop 2, "
    "a countertop 1, a drawer 4, a drawer 3, a drawer 2, a drawer 1, a garbagecan 1, a handtowelholder 1, "
    "a sinkbasin 1, a toilet 1, a toiletpaperhanger 1, a towelholder 2, and a towelholder 1.\n\n"
    "Your task is to: clean some cloth and put it in drawer."
)

EXAMPLE_TURNS = (
    (
        "I need a cloth, then clean it at the sinkbasin, then put it in a drawer. Cloths are often near the toilet or on a countertop. I will try the toilet first.",
        "go to toilet 1",
        "On the toilet 1, you see a candle 3, a cloth 1, and a soapbar 2.",
    ),
    (
        "There is cloth 1 here. I take it.",
        "take cloth 1 from toilet 1",
        "You pick up the cloth 1 from the toilet 1.",
    ),
    ("Now I clean it at the sinkbasin.", "go to sinkbasin 1", "On the sinkbasin 1, you see a sink 1."),
    (
        "I am at the sinkbasin with the cloth.",
        "clean cloth 1 with sinkbasin 1",
        "You clean the cloth 1 using the sinkbasin 1.",
    ),
    (
        "The cloth is clean. Next I put it in a drawer, starting with drawer 1.",
        "go to drawer 1",
        "The drawer 1 is closed.",
    ),
    (
        "The drawer is closed, so I open it first.",
        "open drawer 1",
        "You open the drawer 1. The drawer 1 is open. In it, you see a candle 2, a candle 1, and a soapbar 1.",
    ),
    (
        "The drawer is open. I put the clean cloth in it.",
        "put cloth 1 in/on drawer 1",
        "You put the cloth 1 in/on the drawer 1.",
    ),
)

PROMPT = PromptSpec(
    env="alfworld", instruction=INSTRUCTION, example_task=EXAMPLE_TASK, example_turns=EXAMPLE_TURNS
)
