# study: the powered CPU study (issue 23): SmolLM2-135M-Instruct on ALFWorld pick games, no in-context
# example, sized so the SFT agent wins some but not all games and the methods can be told apart.
#   PROFILE=study bash scripts/run_study.sh          (resumable stage by stage; results/study/)
# Evaluation: every game of the environment's splits (ALFWorld: 24 unseen + 35 seen pick games) plus
# HELDOUT_TASKS training games that no stage touches (exploration and online PPO draw only from the SFT
# games, EXPLORE_TASK_IDS).
# Precedence (first to set wins): command line > scripts/configs/$ENV_NAME.sh > this profile >
# scripts/profiles/base.sh, which holds every default this file does not change.
: "${MAX_NEW_TOKENS:=96}"      # the longest expert turn is 80 tokens
: "${BATCH_SIZE:=16}"
: "${HELDOUT_TASKS:=100}"      # ALFWorld: 24 + 35 + 100 = 159 evaluation games
case "$ENV_NAME" in
  alfworld)
    : "${SFT_TASK_TYPES=pick}"
    : "${ICL_EXAMPLES:=0}" ;;
esac
# SFT: the first SFT_NUM_TRAJ expert trajectories of the type in ETO's order, one epoch, batch 8.
# A probe with 224 trajectories won 8/24 unseen and 15/35 seen games; its failures never found the object,
# and more trajectories looked more useful than more epochs.
: "${SFT_NUM_TRAJ=400}"
: "${SFT_EPOCHS:=1}"
: "${SFT_LR:=1e-4}"
: "${SFT_BATCH:=2}"
: "${SFT_GRAD_ACCUM:=4}"
: "${SFT_SAVE_STEPS:=10}"
# Exploration: EXPLORE_TASKS of the SFT games x EXPLORE_M rollouts at the paper's temperature.
: "${EXPLORE_TASKS=80}"
: "${EXPLORE_BATCH:=16}"
: "${EXPLORE_TASK_IDS=$RUN_DIR/sft/model/task_ids.txt}"
: "${PRM_VAL_FRACTION:=0.2}"
: "${PRM_LOG_STEPS:=50}"
: "${FUSE_VARIANTS:=progress sparse mean random no-progress no-grounding}"
# SPA-RL (progress) against outcome-only PPO (sparse) first, then the critic-free baselines on the same
# rollouts (ppo/README.md); scripts/run_study.sh trains every method for seed 1 before seed 2.
: "${PPO_VARIANTS:=sparse progress gigpo grpo rloo}"
: "${PPO_ITERS:=80}"           # one pass over the 320 exploration rollouts, 4 per iteration
: "${PPO_ROLLOUTS:=4}"
: "${PPO_EPOCHS:=4}"           # the public code's (TRL's default). With 1 the first run's policy barely
                               # moved: approx-KL <= 7.5e-5, clip fraction <= 0.07 % over 80 updates
: "${PPO_MB:=1}"
: "${PPO_ACCUM:=2}"
: "${PPO_LR:=1e-4}"
: "${PPO_PROBE_EVERY:=20}"     # the learning curve: 32 training games played greedily every 20 updates
: "${PPO_PROBE_TASKS:=32}"
: "${PPO_SAVE_EVERY:=2}"      # a session that ends mid-run loses at most one update (~5 min), not four
