# VirtualHome settings (envs/virtualhome/README.md). The defaults below (`:=`) apply when neither the
# environment nor the profile (scripts/profiles/$PROFILE.sh) set the variable; uncommented plain
# assignments override everything.
: "${EVAL_SPLITS:=unseen seen}"   # splits to evaluate: any of train seen unseen (unseen = test: unseen titles)
: "${MAX_STEPS:=40}"              # the paper's limit (the tiny profile sets 4)
: "${TEMPERATURE:=0}"             # evaluation decoding (0 = greedy)
: "${BACKEND:=hf}"                # hf (in-process) | openai (any OpenAI-compatible server)
: "${API_BASE:=}"                 # for BACKEND=openai, e.g. http://127.0.0.1:8000/v1
: "${ICL_EXAMPLES:=1}"            # in-context examples: 1 (the paper's prompt) | 0 (instruction + task)
# Profiles are written for ALFWorld (the demo trains and explores "pick" tasks only): keep only
# VirtualHome task types (task titles in snake case; training titles listed here), so that the demo
# trains on every title unless a VirtualHome type is named.
_vh_keep() {  # _vh_keep "WORDS": the words of WORDS that are VirtualHome training task types, comma-joined
  local types="browse_internet change_tv_channel cook_some_food drink get_some_water go_to_sleep
    go_to_toilet make_coffee pet_cat pick_up_phone relax_on_sofa set_up_table take_shower turn_on_light
    wash_clothes wash_dishes_by_hand wash_dishes_with_dishwasher wash_hands wash_teeth watch_tv
    write_an_email" out="" w
  for w in ${1//,/ }; do [[ " ${types//$'\n'/ } " == *" $w "* ]] && out+="${out:+,}$w"; done
  echo "$out"
}
SFT_TASK_TYPES="$(_vh_keep "${SFT_TASK_TYPES:-}")"
EXPLORE_TASK_TYPES="$(_vh_keep "${EXPLORE_TASK_TYPES:-}")"
unset -f _vh_keep
# Uncomment to override the profile:
# BASE_MODEL=/path/to/Llama-3.2-3B-Instruct
# NUM_TASKS=30
