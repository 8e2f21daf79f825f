# paper: Llama-3.2-3B-Instruct at the paper's settings; rollouts best served by vLLM
# (BACKEND=openai API_BASE=http://127.0.0.1:8000/v1 MODEL=<served name>).
: "${BASE_MODEL:?set BASE_MODEL to a local Llama-3.2-3B-Instruct folder}"
: "${MODEL:=$BASE_MODEL}"
: "${NUM_TASKS:=}"
: "${MAX_NEW_TOKENS:=256}"
: "${BATCH_SIZE:=64}"
: "${DTYPE:=bfloat16}"
# SFT (paper): 3 epochs, lr 2e-5, warmup 0.03, cosine, global batch 16, max length 4096,
# DeepSpeed ZeRO-3 over NUM_GPUS (global batch = NUM_GPUS x SFT_BATCH x SFT_GRAD_ACCUM).
: "${NUM_GPUS:=4}"
: "${SFT_NUM_TRAJ:=}"
: "${SFT_EPOCHS:=3}"
: "${SFT_LR:=2e-5}"
: "${SFT_WARMUP:=0.03}"
: "${SFT_BATCH:=2}"
: "${SFT_GRAD_ACCUM:=2}"
: "${SFT_MAX_LEN:=4096}"
: "${SFT_DEEPSPEED:=sft/configs/ds_zero3.json}"
: "${SFT_EXTRA:=--bf16 --gradient_checkpointing}"
# Exploration (paper: M = 10, temperature 0.7; the public script uses 5) and the estimator at the
# public code's settings: whole backbone, lr 3e-6, 1 epoch, micro-batch 2 x accumulation 2,
# DeepSpeed ZeRO-2 with optimizer offload. PRM_HEAD=vocab-linear reproduces the public code's head.
: "${EXPLORE_TASKS:=}"
: "${EXPLORE_M:=10}"
: "${EXPLORE_TEMPERATURE:=0.7}"
: "${PRM_HEAD:=mlp}"
: "${PRM_BACKBONE:=full}"
: "${PRM_EPOCHS:=1}"
: "${PRM_LR:=3e-6}"
: "${PRM_BATCH:=2}"
: "${PRM_GRAD_ACCUM:=2}"
: "${PRM_MAX_LEN:=4096}"
: "${PRM_VAL_FRACTION:=0.05}"
: "${PRM_CROSS_FIT:=0}"  # 0: in-sample c_t (paper); K >= 2: K-fold cross-fit by task (prm/README.md)
: "${PRM_DEEPSPEED:=prm/configs/ds_zero2.json}"
: "${PRM_EXTRA:=--bf16}"
: "${FUSE_VARIANTS:=progress sparse mean random mc no-progress no-grounding public-code}"
# PPO (LoRA r 8, alpha 16; the rest as others rebuilt the public code's missing config: lr 1e-5,
# batch 4, initial KL 0.3 with adaptive target 6, gamma 0.99). PPO_MODE=online for true on-policy PPO.
: "${PPO_MODE:=offline}"
: "${PPO_VARIANTS:=progress sparse mean random mc no-progress no-grounding public-code}"
: "${PPO_ITERS:=500}"
: "${PPO_ROLLOUTS:=16}"
: "${PPO_EPOCHS:=2}"
: "${PPO_MB:=4}"
: "${PPO_ACCUM:=1}"
: "${PPO_LR:=1e-5}"
: "${PPO_KL:=0.3}"
: "${PPO_KL_TARGET:=6}"
: "${PPO_GAE_LEVEL:=token}"   # token (public code) | turn: gamma, lambda once per agent turn (ppo/README.md)
