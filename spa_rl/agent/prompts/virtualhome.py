"""VirtualHome prompt. The example is a real training task (``32_1``, "Cook some food") played through the
environment with a shorter plan than its program; the observations are the environment's own text (a test
checks them), the thoughts are written for this project."""

from spa_rl.agent.prompts import PromptSpec

INSTRUCTION = """You are an agent doing a household activity in a simulated house. Each turn you read what you observe, think briefly, and do exactly one action. Always answer in this form:
Thought: <a short plan or reasoning>
Action: <one action>

The actions you can use (fill in the parts in parentheses):
- moving: walk to (room or object), run to (room or object), find (object), turn to (object), look around
- hands: grab (object), put (object) on (object), put (object) in (object), put back (object), pour (object) into (object), drop (object), release (object)
- devices: open (object), close (object), switch on (object), switch off (object), plug in (object), plug out (object)
- body: sit on (object), lie on (object), stand up, sleep, wake up, wear (object), take off (object)
- using things: look at, watch, read, touch, point at, push, pull, move, wash, rinse, scrub, wipe, squeeze, cut, eat, drink, greet, type on (each followed by an object)
Name objects exactly as the observations show them, number included when there is one (for example "cup 2", "dining room"). You can hold two objects, one in each hand. Objects inside closed things are not listed until you open them. An action that cannot be done is answered with "Nothing happens.". The task is done as soon as the house is in the state the task asks for."""

EXAMPLE_TASK = (
    "The house has 4 rooms: bathroom, bedroom, dining room, home office. In the bathroom you see: "
    "bathroom cabinet, bathroom counter, bathtub, ceilinglamp 1, cup, curtain 3, curtain 4, door 1, faucet 1, "
    "light 1, mat 1, shower 1, shower 2, toilet, towel rack 1-4, walllamp 1-3, wallshelf 1, window 1. "
    "You are in the bathroom, holding nothing.\n\n"
    "Your task: Cook some food. I switch on the stove and cook my groceries there."
)

EXAMPLE_TURNS = (
    (
        "Cooking happens in the kitchen, which in this house is the dining room. I go there first.",
        "walk to dining room",
        "You walk to the dining room. In the dining room you see: bench 1, bench 2, bookshelf 2, bowl, "
        "ceilinglamp 3, ceilinglamp 4, coffe maker, cupboard, door 2, drawing 4-9, faucet 2, food food, "
        "freezer, kitchen counter, light 3, mat 3, mat 4, microwave, orchid 2, oven, phone, photoframe 2, "
        "powersocket 1, sponge, stovefan, table 2, television 1, toaster, tvstand 1, wall clock, wallshelf 2, "
        "wallshelf 3. You are in the dining room, holding nothing.",
    ),
    (
        "There is no stove, but there is an oven, and a bowl to cook in. I go to the oven.",
        "walk to oven",
        "You walk to the oven. The oven is closed and off. You are in the dining room, holding nothing.",
    ),
    (
        "The oven is off. I switch it on.",
        "switch on oven",
        "You switch on the oven. You are in the dining room, holding nothing.",
    ),
    (
        "Now I need the bowl with the food.",
        "find bowl",
        "You find the bowl. You are in the dining room, holding nothing.",
    ),
    ("I take the bowl.", "grab bowl", "You grab the bowl. You are in the dining room, holding the bowl."),
    (
        "I put the bowl on the hot oven to cook it.",
        "put bowl on oven",
        "You put the bowl on the oven. You are in the dining room, holding nothing.",
    ),
)
EXAMPLE_TASK_ID = "32_1"
EXAMPLE_SPLIT = "train"

PROMPT = PromptSpec(
    env="virtualhome", instruction=INSTRUCTION, example_task=EXAMPLE_TASK, example_turns=EXAMPLE_TURNS
)
