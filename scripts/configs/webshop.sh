# WebShop settings (1000-product setting; envs/webshop/README.md).
# Precedence (first to set wins): command line > this file > scripts/profiles/$PROFILE.sh (the scale) >
# scripts/profiles/base.sh. This file holds the environment's facts; a line you uncomment here wins over
# every profile.
: "${EVAL_SPLITS:=test}"          # splits to evaluate: any of train test human
: "${MAX_STEPS:=10}"              # the paper's step limit (a profile may cap it: MAX_STEPS_CAP)
: "${TEMPERATURE:=0}"             # evaluation decoding (0 = greedy)
: "${BACKEND:=hf}"                # hf (in-process) | openai (any OpenAI-compatible server)
: "${API_BASE=}"                  # for BACKEND=openai, e.g. http://127.0.0.1:8000/v1
: "${WEBSHOP_REWARD:=original}"   # the reward's option rule: original (WebShop's own, its published numbers)
                                  # | corrected | legacy (this project's earlier rules); envs/webshop/README.md
: "${ENV_OPTIONS=reward=$WEBSHOP_REWARD}"  # every stage that plays episodes gets --env-option for each
# Task types (SFT_TASK_TYPES, EXPLORE_TASK_TYPES, EVAL_TASK_TYPES): the product categories beauty
# electronics fashion garden grocery.
# Uncomment to override the profile:
# : "${BASE_MODEL:=/path/to/Llama-3.2-3B-Instruct}"
# : "${NUM_TASKS=50}"
# : "${ICL_EXAMPLES:=1}"          # in-context examples: 1 (the paper's prompt) | 0 (instruction + task)
