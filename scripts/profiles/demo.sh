# demo: SmolLM2-135M-Instruct on CPU, a few tasks per stage; the README's main job
# (scripts/run_pipeline.sh). A fresh clone took 23 min on 2 CPU cores (results/alfworld_demo_pipeline_speed/).
: "${BASE_MODEL:=models/smollm2-135m-instruct}"
: "${MODEL:=$BASE_MODEL}"
: "${NUM_TASKS:=8}"
: "${MAX_NEW_TOKENS:=96}"      # the longest expert turn is 80 tokens
: "${BATCH_SIZE:=8}"
# Episodes stop after 15 steps instead of the environment's limit (ALFWorld: 40): the demo's
# successful rollouts took 4-11 steps, and failed ones cost the full limit at ~10 s per step.
: "${MAX_STEPS_CAP:=15}"
: "${EVAL_SPLITS:=unseen}"     # the demo evaluates unseen pick games only (24 exist; NUM_TASKS of them)
# SFT: ~15 s per trajectory per epoch on 2 CPU cores. A higher learning rate than the paper's
# because the demo takes only a few optimizer steps. 64 trajectories of all types leave a 135M model
# at 0% success (results/README.md), so the demo trains and explores one task type (pick, the
# shortest); empty = all types, as the gpu and paper profiles do.
# The demo's ALFWorld agents see no in-context example (ICL_EXAMPLES=0: instruction + task, as SPA-RL's
# own data script has it before the estimator): an expert trajectory is 539 tokens (~30%) shorter. Every
# stage uses it (expert file data/sft/alfworld_sft_icl0.json, SFT, exploration, estimator, PPO, eval).
# The untrained model keeps the paper's prompt: ICL_EXAMPLES=1 PROFILE=demo bash eval/alfworld.sh
if [[ "${ENV_NAME:-}" == alfworld ]]; then
  : "${SFT_TASK_TYPES=pick}"        # set it empty (SFT_TASK_TYPES=) for all types
  : "${ICL_EXAMPLES:=0}"            # ICL_EXAMPLES=1 for the paper's prompt (instruction + example + task)
fi
: "${SFT_NUM_TRAJ:=64}"    # 48 saved ~3 min but its 16 exploration rollouts won 1 (grounding 18%) vs 4 (54%)
: "${SFT_EPOCHS:=1}"
: "${SFT_LR:=1e-4}"
: "${SFT_WARMUP:=0.03}"     # float < 1: fraction of the optimizer steps
: "${SFT_BATCH:=1}"
: "${SFT_GRAD_ACCUM:=4}"
: "${SFT_MAX_LEN:=4096}"
# Exploration (paper: temperature 0.7) and the progress estimator: a frozen SFT backbone with the
# MLP head, features read once and the head fitted for many epochs (minutes on CPU).
: "${EXPLORE_TASKS:=8}"
: "${EXPLORE_M:=2}"
: "${EXPLORE_BATCH:=16}"
: "${EXPLORE_TASK_TYPES=${SFT_TASK_TYPES:-}}"
: "${EVAL_TASK_TYPES=${SFT_TASK_TYPES:-}}"
: "${EXPLORE_TEMPERATURE:=0.7}"
: "${PRM_HEAD:=mlp}"
: "${PRM_BACKBONE:=frozen}"
: "${PRM_EPOCHS:=300}"
: "${PRM_LR:=1e-3}"
: "${PRM_BATCH:=4}"
: "${PRM_GRAD_ACCUM:=1}"
: "${PRM_MAX_LEN:=4096}"
: "${PRM_VAL_FRACTION:=0.25}"
: "${PRM_CROSS_FIT:=0}"  # 0: in-sample c_t (paper); K >= 2: K-fold cross-fit by task (prm/README.md)
: "${PRM_LOG_STEPS:=50}"
: "${FUSE_VARIANTS:=progress sparse}"
# PPO with LoRA (r 8, alpha 16) on the exploration rollouts (offline, as the public code): one pass
# over the 16 rollouts. PPO_MODE=online samples fresh rollouts each iteration instead.
: "${PPO_MODE:=offline}"
: "${PPO_VARIANTS:=progress sparse}"
: "${PPO_ITERS:=4}"
: "${PPO_ROLLOUTS:=4}"
: "${PPO_EPOCHS:=1}"
: "${PPO_MB:=1}"
: "${PPO_ACCUM:=2}"
: "${PPO_LR:=1e-4}"
: "${PPO_KL:=0.3}"
: "${PPO_KL_TARGET:=6}"
: "${PPO_GAE_LEVEL:=token}"   # token (public code) | turn: gamma, lambda once per agent turn (ppo/README.md)
