# gpu: SmolLM2-135M-Instruct (or BASE_MODEL=any local folder) on one GPU, full task sets.
: "${BASE_MODEL:=models/smollm2-135m-instruct}"
: "${MODEL:=$BASE_MODEL}"
: "${NUM_TASKS:=}"          # empty: every task of the split
: "${MAX_NEW_TOKENS:=128}"
: "${BATCH_SIZE:=64}"
: "${DTYPE:=bfloat16}"
# SFT: the paper's schedule on the full expert set.
: "${SFT_NUM_TRAJ:=}"
: "${SFT_EPOCHS:=3}"
: "${SFT_LR:=2e-5}"
: "${SFT_WARMUP:=0.03}"
: "${SFT_BATCH:=8}"
: "${SFT_GRAD_ACCUM:=2}"     # global batch 16
: "${SFT_MAX_LEN:=4096}"
: "${SFT_EXTRA:=--bf16}"
# Exploration and progress estimator (LoRA backbone: a 135M model at the paper's 3e-6 barely moves).
: "${EXPLORE_TASKS:=1000}"
: "${EXPLORE_M:=4}"
: "${EXPLORE_TEMPERATURE:=0.7}"
: "${PRM_HEAD:=mlp}"
: "${PRM_BACKBONE:=lora}"
: "${PRM_EPOCHS:=2}"
: "${PRM_LR:=1e-4}"
: "${PRM_BATCH:=4}"
: "${PRM_GRAD_ACCUM:=1}"
: "${PRM_MAX_LEN:=4096}"
: "${PRM_VAL_FRACTION:=0.1}"
: "${PRM_CROSS_FIT:=0}"  # 0: in-sample c_t (paper); K >= 2: K-fold cross-fit by task (prm/README.md)
: "${PRM_EXTRA:=--bf16}"
: "${FUSE_VARIANTS:=progress sparse mean random no-progress no-grounding public-code}"
# PPO
: "${PPO_MODE:=offline}"
: "${PPO_VARIANTS:=progress sparse mean random no-progress no-grounding}"
: "${PPO_ITERS:=100}"
: "${PPO_ROLLOUTS:=32}"
: "${PPO_EPOCHS:=2}"
: "${PPO_MB:=4}"
: "${PPO_ACCUM:=2}"
: "${PPO_LR:=1e-5}"
: "${PPO_KL:=0.3}"
: "${PPO_KL_TARGET:=6}"
: "${PPO_GAE_LEVEL:=token}"   # token (public code) | turn: gamma, lambda once per agent turn (ppo/README.md)
