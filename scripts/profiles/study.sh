# study: the powered CPU study (issue 23): SmolLM2-135M-Instruct on ALFWorld pick games, no in-context
# example, sized so the SFT agent wins some but not all games and the methods can be told apart.
#   PROFILE=study bash scripts/run_study.sh          (resumable stage by stage; results/study/)
# Evaluation: every seen (35) and unseen (24) pick game plus HELDOUT_TASKS pick training games that
# no stage touches (exploration and online PPO draw only from the SFT games, EXPLORE_TASK_IDS).
: "${RUN_DIR:=runs/study/$ENV_NAME}"
: "${BASE_MODEL:=models/smollm2-135m-instruct}"
: "${MODEL:=$BASE_MODEL}"
: "${NUM_TASKS=}"              # empty: every game of the evaluated types in seen / unseen
: "${MAX_NEW_TOKENS:=96}"      # the longest expert turn is 80 tokens
: "${BATCH_SIZE:=16}"
: "${EVAL_SPLITS:=unseen seen heldout}"
: "${HELDOUT_TASKS:=100}"      # 24 + 35 + 100 = 159 evaluation games
: "${HELDOUT_SEED:=0}"
if [[ "${ENV_NAME:-}" == alfworld ]]; then
  : "${SFT_TASK_TYPES=pick}"
  : "${ICL_EXAMPLES:=0}"
fi
# SFT: the first SFT_NUM_TRAJ expert trajectories of the type in ETO's order, one epoch, batch 8.
# A probe with 224 trajectories won 8/24 unseen and 15/35 seen games; its failures never found the object,
# and more trajectories looked more useful than more epochs.
: "${SFT_NUM_TRAJ:=400}"
: "${SFT_EPOCHS:=1}"
: "${SFT_LR:=1e-4}"
: "${SFT_WARMUP:=0.03}"
: "${SFT_BATCH:=2}"
: "${SFT_GRAD_ACCUM:=4}"
: "${SFT_MAX_LEN:=4096}"
: "${SFT_SAVE_STEPS:=10}"
# Exploration: EXPLORE_TASKS of the SFT games x EXPLORE_M rollouts at the paper's temperature.
: "${EXPLORE_TASKS:=80}"
: "${EXPLORE_M:=4}"
: "${EXPLORE_BATCH:=16}"
: "${EXPLORE_TASK_IDS:=$RUN_DIR/sft/model/task_ids.txt}"
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
: "${PRM_VAL_FRACTION:=0.2}"
: "${PRM_CROSS_FIT:=0}"
: "${PRM_LOG_STEPS:=50}"
: "${FUSE_VARIANTS:=progress sparse mean random no-progress no-grounding}"
: "${PPO_MODE:=offline}"
: "${PPO_VARIANTS:=sparse progress}"
: "${PPO_ITERS:=80}"           # one pass over the 320 exploration rollouts, 4 per iteration
: "${PPO_ROLLOUTS:=4}"
: "${PPO_EPOCHS:=1}"
: "${PPO_MB:=1}"
: "${PPO_ACCUM:=2}"
: "${PPO_LR:=1e-4}"
: "${PPO_KL:=0.3}"
: "${PPO_KL_TARGET:=6}"
: "${PPO_GAE_LEVEL:=token}"
: "${PPO_PROBE_EVERY:=20}"     # the learning curve: 32 training games played greedily every 20 updates
: "${PPO_PROBE_TASKS:=32}"
