# paper: Llama-3.2-3B-Instruct at the paper's settings; rollouts through vLLM: exploration, each evaluation and
# online PPO start a vLLM server for the model they play and stop it afterwards (ROLLOUT_BACKEND, base.sh; vLLM
# from VLLM_PYTHON). ROLLOUT_BACKEND=hf generates in process instead.
# Precedence (first to set wins): command line > scripts/configs/$ENV_NAME.sh > this profile >
# scripts/profiles/base.sh, which holds every default this file does not change.
: "${BASE_MODEL:?set BASE_MODEL to a local Llama-3.2-3B-Instruct folder}"
: "${ROLLOUT_BACKEND:=vllm}"
: "${MAX_NEW_TOKENS:=256}"
: "${BATCH_SIZE:=64}"
# DTYPE (base.sh: auto) gives bf16 on a GPU that has it; --bf16 is not passed to the Trainer, which
# refuses it on a machine without such a GPU before the project can fall back.
# SFT (paper): 3 epochs, lr 2e-5, warmup 0.03, cosine, global batch 16, max length 4096,
# DeepSpeed ZeRO-3 over NUM_GPUS (global batch = NUM_GPUS x SFT_BATCH x SFT_GRAD_ACCUM).
# Training stages run through accelerate (scripts/accelerate/ddp.yaml) over NUM_GPUS GPUs, DeepSpeed where a
# config is set: a machine with fewer GPUs, or without DeepSpeed, is refused before any work, naming what is
# missing. NUM_GPUS=1: one process (GPU 0, or the CPU with a small BASE_MODEL), no DeepSpeed.
: "${NUM_GPUS:=4}"
: "${SFT_BATCH:=2}"
: "${SFT_DEEPSPEED=sft/configs/ds_zero3.json}"
: "${SFT_EXTRA=--activation-checkpointing}"   # gradient checkpointing; off on a CPU (spa_rl/models/precision.py)
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
: "${PRM_EXTRA=--activation-checkpointing}"   # gradient checkpointing; off on a CPU
: "${FUSE_VARIANTS:=progress sparse mean random mc no-progress no-grounding public-code}"
# PPO (LoRA r 8, alpha 16; the rest as others rebuilt the public code's missing config: lr 1e-5,
# batch 4, initial KL 0.3 with adaptive target 6, gamma 0.99). PPO_MODE=online for true on-policy PPO.
: "${PPO_VARIANTS:=progress sparse mean random mc no-progress no-grounding public-code}"
: "${PPO_ITERS:=500}"
# Memory (bench/bench_memory.py, results/memory_3b/): gradient checkpointing, and each minibatch's passes
# split into micro-batches of at most 8192 padded tokens (the same update).
: "${PPO_EXTRA=--gradient-checkpointing --max-tokens-per-micro-batch 8192}"
