# tiny: tests and CI. Random 2-layer Llama with the real tokenizer, a handful of short episodes.
: "${BASE_MODEL:=models/tiny-llama}"
: "${MODEL:=$BASE_MODEL}"
: "${NUM_TASKS:=2}"
: "${MAX_STEPS:=4}"
: "${MAX_NEW_TOKENS:=16}"
: "${BATCH_SIZE:=2}"
# SFT
: "${SFT_NUM_TRAJ:=4}"       # first N expert trajectories (empty: all)
: "${SFT_EPOCHS:=2}"
: "${SFT_LR:=1e-3}"
: "${SFT_WARMUP:=0.0}"
: "${SFT_BATCH:=2}"          # per device
: "${SFT_GRAD_ACCUM:=1}"
: "${SFT_MAX_LEN:=1536}"
# Exploration and progress estimator
: "${EXPLORE_TASKS:=2}"
: "${EXPLORE_M:=2}"
: "${EXPLORE_TEMPERATURE:=0.7}"
: "${PRM_HEAD:=mlp}"
: "${PRM_BACKBONE:=frozen}"  # frozen: features cached once, head trained alone
: "${PRM_EPOCHS:=20}"
: "${PRM_LR:=1e-3}"
: "${PRM_BATCH:=2}"
: "${PRM_GRAD_ACCUM:=1}"
: "${PRM_MAX_LEN:=2048}"
: "${PRM_VAL_FRACTION:=0.5}"
: "${PRM_CROSS_FIT:=0}"  # 0: in-sample c_t (paper); K >= 2: K-fold cross-fit by task (prm/README.md)
: "${FUSE_VARIANTS:=progress sparse}"
# PPO
: "${PPO_MODE:=offline}"
: "${PPO_VARIANTS:=progress sparse}"
: "${PPO_ITERS:=2}"
: "${PPO_ROLLOUTS:=2}"
: "${PPO_EPOCHS:=1}"
: "${PPO_MB:=1}"
: "${PPO_ACCUM:=1}"
: "${PPO_LR:=1e-3}"
: "${PPO_KL:=0.3}"
: "${PPO_KL_TARGET:=6}"
: "${PPO_GAE_LEVEL:=token}"   # token (public code) | turn: gamma, lambda once per agent turn (ppo/README.md)
