# WebShop settings (1000-product setting; envs/webshop/README.md). The defaults below (`:=`) apply when
# neither the environment nor the profile (scripts/profiles/$PROFILE.sh) set the variable; uncommented
# plain assignments override everything.
: "${EVAL_SPLITS:=test}"          # splits to evaluate: any of train test human
: "${MAX_STEPS:=10}"              # the paper's limit (the tiny profile sets 4)
: "${TEMPERATURE:=0}"             # evaluation decoding (0 = greedy)
: "${BACKEND:=hf}"                # hf (in-process) | openai (any OpenAI-compatible server)
: "${API_BASE:=}"                 # for BACKEND=openai, e.g. http://127.0.0.1:8000/v1
: "${ICL_EXAMPLES:=1}"            # in-context examples: 1 (the paper's prompt) | 0 (instruction + task)
# Profiles are written for ALFWorld (the demo evaluates "unseen" and trains on "pick" tasks): keep only
# what WebShop has. Its splits are train/test/human; its task types are the product categories.
_ws_keep() {  # _ws_keep "WORDS" "ALLOWED" SEP: the words of WORDS found in ALLOWED, joined by SEP
  local out="" w
  for w in ${1//,/ }; do [[ " $2 " == *" $w "* ]] && out+="${out:+$3}$w"; done
  echo "$out"
}
EVAL_SPLITS="$(_ws_keep "$EVAL_SPLITS" "train test human" " ")"; : "${EVAL_SPLITS:=test}"
SFT_TASK_TYPES="$(_ws_keep "${SFT_TASK_TYPES:-}" "beauty electronics fashion garden grocery" ",")"
EXPLORE_TASK_TYPES="$(_ws_keep "${EXPLORE_TASK_TYPES:-}" "beauty electronics fashion garden grocery" ",")"
unset -f _ws_keep
# Uncomment to override the profile:
# BASE_MODEL=/path/to/Llama-3.2-3B-Instruct
# NUM_TASKS=50
