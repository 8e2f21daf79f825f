# VirtualHome settings (envs/virtualhome/README.md).
# Precedence (first to set wins): command line > this file > scripts/profiles/$PROFILE.sh (the scale) >
# scripts/profiles/base.sh. This file holds the environment's facts; a line you uncomment here wins over
# every profile.
: "${EVAL_SPLITS:=unseen seen}"   # splits to evaluate: any of train seen unseen (unseen = test: unseen titles)
: "${MAX_STEPS:=40}"              # the paper's step limit (a profile may cap it: MAX_STEPS_CAP)
: "${TEMPERATURE:=0}"             # evaluation decoding (0 = greedy)
: "${BACKEND:=hf}"                # hf (in-process) | openai (any OpenAI-compatible server)
: "${API_BASE=}"                  # for BACKEND=openai, e.g. http://127.0.0.1:8000/v1
# Task types (SFT_TASK_TYPES, EXPLORE_TASK_TYPES, EVAL_TASK_TYPES): the task title in snake case, e.g.
# watch_tv, make_coffee, wash_hands (envs/virtualhome/README.md lists the training titles).
# Uncomment to override the profile:
# : "${BASE_MODEL:=/path/to/Llama-3.2-3B-Instruct}"
# : "${NUM_TASKS=30}"
# : "${ICL_EXAMPLES:=1}"          # in-context examples: 1 (the paper's prompt) | 0 (instruction + task)
