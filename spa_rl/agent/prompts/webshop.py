"""WebShop prompt. The example is a real training goal played on this project's engine (its
observations are the engine's own text; tests check they still are); the thoughts are written for
this project."""

from spa_rl.agent.prompts import PromptSpec

EXAMPLE_GOAL_ID = "B07NZ173GY-3"  # a train-split goal

INSTRUCTION = """You are shopping in an online store for the product that an instruction describes. Each turn you read the current page, think briefly, and take exactly one action. Always answer in this form:
Thought: <a short plan or reasoning>
Action: <one action>

The actions you can use:
- search[keywords]: search the store. Only the search page has a search box: the first page, or the page that "Back to Search" leads to.
- click[text]: click something the page shows, written exactly as the page writes it: a product ID on a results page (for example B07NZ173GY), an option value on a product page (a size, a color, ...), or one of the buttons "Back to Search", "Next >", "< Prev", "Description", "Features", "Reviews", "Buy Now".
A page is shown as its texts separated by [SEP]. Before clicking "Buy Now", select every option the instruction asks for, and buy only within its price limit. Buying ends the task, and you have at most 10 actions. An action that the page does not offer is answered with "Invalid action!"."""

EXAMPLE_TASK = "WebShop [SEP] Instruction: [SEP] Find me day comfort men's sandals with rubber sole with color: black, and size: 13, and price lower than 80.00 dollars [SEP] Search"

EXAMPLE_TURNS = (
    (
        "I need men's sandals for day comfort with a rubber sole, in black, size 13, under $80. I will search with the words of the instruction.",
        "search[find me day comfort men's sandals with rubber sole with color: black, and size: 13]",
        "Instruction: [SEP] Find me day comfort men's sandals with rubber sole with color: black, and size: 13, and price lower than 80.00 dollars [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] B008QYOGZ2 [SEP] OluKai MEA Ola - Men's Supportive Sandal Charcoal/Dkjava - 14 [SEP] $100.0 [SEP] B082MT9162 [SEP] GLOBALWIN Men's Casual Slip On Penny Loafers Lightweight Driving Shoes [SEP] $29.99 to $49.99 [SEP] B09QXF3V3X [SEP] DEUVOUM Summer Trend Mesh Shoes Men's Sports Shoes Solid Color Lace-Up Sneakers Fashion All-Match Walking Shoes Outdoor Hiking Shoes Non-Slip Shock-Absorbing Casual Sports Shoes [SEP] $100.0 [SEP] B0989VY7D8 [SEP] N\\C Mens Flip Flops Thong Sandals Yoga Foam Slippers 44 R011 Black [SEP] $17.99 [SEP] B09QRV4YLR [SEP] SWEETSHOPZ Irish Dance Shape Background Active Running Walking Sneakers Shoes for Women Men Unisex Kids Adults Fashion Sports Black [SEP] $100.0 [SEP] B07NZ173GY [SEP] FitFlop Men's Hollis Neoprene Sport Sandal [SEP] $26.44 to $69.99 [SEP] B09MFZ726L [SEP] Olivia Miller Women’s Fashion Ladies Shoes, Sara PU Vegan Leather & Rhinestones Double Strap Cutout Band Slip On Open Toe Trendy Casual Summer Slide Flat Sandals [SEP] $26.0 to $29.4 [SEP] B09QL82H1L [SEP] Padaleks Elastic Cute Flat Sandals for Women Comfortable Summer Beach Shoes Wedges Flip Flop Dressy Thong Sandal [SEP] $23.29 [SEP] B002RRT0NM [SEP] Berkemann Women's Clogs and Mules, 5 UK [SEP] $78.42 to $94.9 [SEP] B09S6VN97V [SEP] Skechers Women's, Relaxed Fit: Arch Fit - Commute Clog Taupe 11 M [SEP] $74.95",
    ),
    (
        "B07NZ173GY, the FitFlop men's sport sandal, fits the instruction, and its price ($26.44 to $69.99) is under $80. I will open it.",
        "click[B07NZ173GY]",
        "Instruction: [SEP] Find me day comfort men's sandals with rubber sole with color: black, and size: 13, and price lower than 80.00 dollars [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] 11 [SEP] 12 [SEP] 12.5 [SEP] 13 [SEP] color [SEP] black [SEP] light grey [SEP] FitFlop Men's Hollis Neoprene Sport Sandal [SEP] Price: $26.44 to $69.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now",
    ),
    (
        "The page has color and size options. The instruction wants the color black, so I select it first.",
        "click[black]",
        "Instruction: [SEP] Find me day comfort men's sandals with rubber sole with color: black, and size: 13, and price lower than 80.00 dollars [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] 11 [SEP] 12 [SEP] 12.5 [SEP] 13 [SEP] color [SEP] black [SEP] light grey [SEP] FitFlop Men's Hollis Neoprene Sport Sandal [SEP] Price: $26.44 to $69.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now",
    ),
    (
        "Now the size: the instruction asks for 13.",
        "click[13]",
        "Instruction: [SEP] Find me day comfort men's sandals with rubber sole with color: black, and size: 13, and price lower than 80.00 dollars [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] 11 [SEP] 12 [SEP] 12.5 [SEP] 13 [SEP] color [SEP] black [SEP] light grey [SEP] FitFlop Men's Hollis Neoprene Sport Sandal [SEP] Price: $26.44 to $69.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now",
    ),
    (
        "Black and size 13 are both chosen, the product matches and costs less than $80. I will buy it.",
        "click[Buy Now]",
        'Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk interface.) [SEP] Purchased [SEP] asin [SEP] B07NZ173GY [SEP] options [SEP] {"color": "black", "size": "13"} [SEP] attrs [SEP] None [SEP] category [SEP] None [SEP] query [SEP] None [SEP] product category [SEP] None [SEP] Target [SEP] asin [SEP] options [SEP] attrs [SEP] price upper [SEP] instuction text [SEP] category [SEP] product category [SEP] query [SEP] Goal [SEP] None [SEP] Reward [SEP] Your score (min 0.0, max 1.0) [SEP] 1.0 [SEP] Reward Details [SEP] None',
    ),
)

PROMPT = PromptSpec(
    env="webshop", instruction=INSTRUCTION, example_task=EXAMPLE_TASK, example_turns=EXAMPLE_TURNS
)
