# ALFWorld settings. The defaults below (`:=`) apply when neither the environment nor the profile
# (scripts/profiles/$PROFILE.sh) set the variable; uncommented plain assignments override everything.
: "${EVAL_SPLITS:=unseen seen}"   # splits to evaluate: any of train seen unseen
: "${MAX_STEPS:=40}"              # the paper's limit (the tiny profile sets 4)
: "${TEMPERATURE:=0}"             # evaluation decoding (0 = greedy)
: "${BACKEND:=hf}"                # hf (in-process) | openai (any OpenAI-compatible server)
: "${API_BASE:=}"                 # for BACKEND=openai, e.g. http://127.0.0.1:8000/v1
: "${ICL_EXAMPLES:=1}"            # in-context examples: 1 (the paper's prompt) | 0 (instruction + task)
# Uncomment to override the profile:
# BASE_MODEL=/path/to/Llama-3.2-3B-Instruct
# NUM_TASKS=20
