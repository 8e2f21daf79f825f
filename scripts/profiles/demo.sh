# demo: SmolLM2-135M-Instruct on CPU, a few tasks per stage; the README's main job
# (scripts/run_pipeline.sh). A fresh clone took 19 min on 2 CPU cores (results/alfworld_demo_pipeline_speed/).
# Precedence (first to set wins): command line > scripts/configs/$ENV_NAME.sh > this profile >
# scripts/profiles/base.sh, which holds every default this file does not change.
: "${NUM_TASKS=8}"             # evaluation games per split
: "${MAX_NEW_TOKENS:=96}"      # the longest expert turn is 80 tokens
: "${BATCH_SIZE:=8}"
# Episodes stop after 15 steps instead of the environment's limit (ALFWorld: 40): the demo's
# successful rollouts took 4-11 steps, and failed ones cost the full limit at ~10 s per step.
: "${MAX_STEPS_CAP=15}"
: "${EVAL_SPLITS_CAP=1}"       # the first of the environment's splits only (ALFWorld: unseen)
# 64 trajectories of all types leave a 135M model at 0% success (results/README.md), so on ALFWorld the
# demo trains, explores and evaluates one task type (pick, the shortest), and its agents see no
# in-context example (instruction + task: an expert trajectory is 539 tokens, ~30%, shorter). The other
# environments keep every task type and the paper's prompt.
case "$ENV_NAME" in
  alfworld)
    : "${SFT_TASK_TYPES=pick}"   # SFT_TASK_TYPES= for all types
    : "${ICL_EXAMPLES:=0}" ;;    # ICL_EXAMPLES=1 for the paper's prompt
esac
# SFT: ~15 s per trajectory per epoch on 2 CPU cores. A higher learning rate than the paper's because
# the demo takes only a few optimizer steps.
: "${SFT_NUM_TRAJ=64}"    # 48 saved ~3 min but its 16 exploration rollouts won 1 (grounding 18%) vs 4 (54%)
: "${SFT_EPOCHS:=1}"
: "${SFT_LR:=1e-4}"
: "${SFT_BATCH:=1}"
: "${SFT_GRAD_ACCUM:=4}"
# Exploration (paper: temperature 0.7) and the progress estimator: a frozen SFT backbone with the MLP
# head, features read once and the head fitted for many epochs (minutes on CPU).
: "${EXPLORE_TASKS=8}"
: "${EXPLORE_M:=2}"
: "${EXPLORE_BATCH:=16}"
: "${PRM_VAL_FRACTION:=0.25}"
: "${PRM_LOG_STEPS:=50}"
# PPO with LoRA (r 8, alpha 16) on the exploration rollouts (offline, as the public code): one pass over
# the 16 rollouts. PPO_MODE=online samples fresh rollouts each iteration instead.
: "${PPO_ITERS:=4}"
: "${PPO_ROLLOUTS:=4}"
: "${PPO_EPOCHS:=1}"
: "${PPO_MB:=1}"
: "${PPO_ACCUM:=2}"
: "${PPO_LR:=1e-4}"
