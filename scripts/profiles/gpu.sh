# gpu: SmolLM2-135M-Instruct (or BASE_MODEL=any local folder) on one GPU, full task sets.
# Precedence (first to set wins): command line > scripts/configs/$ENV_NAME.sh > this profile >
# scripts/profiles/base.sh, which holds every default this file does not change.
: "${BATCH_SIZE:=64}"
# DTYPE (base.sh: auto) gives bf16 on a GPU that has it; --bf16 is not passed to the Trainer, which
# refuses it on a machine without such a GPU before the project can fall back.
# SFT: the paper's schedule on the full expert set (base.sh: 3 epochs, lr 2e-5, global batch 16).
# Exploration and progress estimator (LoRA backbone: a 135M model at the paper's 3e-6 barely moves).
: "${EXPLORE_TASKS=1000}"
: "${PRM_BACKBONE:=lora}"
: "${PRM_EPOCHS:=2}"
: "${PRM_LR:=1e-4}"
: "${FUSE_VARIANTS:=progress sparse mean random no-progress no-grounding public-code}"
# PPO
: "${PPO_VARIANTS:=progress sparse mean random no-progress no-grounding}"
: "${PPO_ROLLOUTS:=32}"
: "${PPO_ACCUM:=2}"
