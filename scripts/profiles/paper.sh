# paper: Llama-3.2-3B-Instruct at the paper's settings; rollouts best served by vLLM
# (BACKEND=openai API_BASE=http://127.0.0.1:8000/v1 MODEL=<served name>).
# Precedence (first to set wins): command line > scripts/configs/$ENV_NAME.sh > this profile >
# scripts/profiles/base.sh, which holds every default this file does not change.
: "${BASE_MODEL:?set BASE_MODEL to a local Llama-3.2-3B-Instruct folder}"
: "${MAX_NEW_TOKENS:=256}"
: "${BATCH_SIZE:=64}"
# DTYPE (base.sh: auto) gives bf16 on a GPU that has it; --bf16 is not passed to the Trainer, which
# refuses it on a machine without such a GPU before the project can fall back.
# SFT (paper): 3 epochs, lr 2e-5, warmup 0.03, cosine, global batch 16, max length 4096,
# DeepSpeed ZeRO-3 over NUM_GPUS (global batch = NUM_GPUS x SFT_BATCH x SFT_GRAD_ACCUM).
: "${NUM_GPUS:=4}"
: "${SFT_BATCH:=2}"
: "${SFT_DEEPSPEED=sft/configs/ds_zero3.json}"
: "${SFT_EXTRA=--gradient-checkpointing}"   # turned off on a CPU (spa_rl/models/precision.py)
# Exploration (paper: M = 10, temperature 0.7; the public script uses 5) and the estimator at the
# public code's settings: whole backbone, lr 3e-6, 1 epoch, micro-batch 2 x accumulation 2,
# DeepSpeed ZeRO-2 with optimizer offload. PRM_HEAD=vocab-linear reproduces the public code's head.
: "${EXPLORE_M:=10}"
: "${PRM_BACKBONE:=full}"
: "${PRM_EPOCHS:=1}"
: "${PRM_LR:=3e-6}"
: "${PRM_BATCH:=2}"
: "${PRM_GRAD_ACCUM:=2}"
: "${PRM_VAL_FRACTION:=0.05}"
: "${PRM_DEEPSPEED=prm/configs/ds_zero2.json}"
: "${FUSE_VARIANTS:=progress sparse mean random mc no-progress no-grounding public-code}"
# PPO (LoRA r 8, alpha 16; the rest as others rebuilt the public code's missing config: lr 1e-5,
# batch 4, initial KL 0.3 with adaptive target 6, gamma 0.99). PPO_MODE=online for true on-policy PPO.
: "${PPO_VARIANTS:=progress sparse mean random mc no-progress no-grounding public-code}"
: "${PPO_ITERS:=500}"
