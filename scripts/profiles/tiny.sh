# tiny: tests and CI. Random 2-layer Llama with the real tokenizer, a handful of short episodes.
# Precedence (first to set wins): command line > scripts/configs/$ENV_NAME.sh > this profile >
# scripts/profiles/base.sh, which holds every default this file does not change.
: "${BASE_MODEL:=models/tiny-llama}"
: "${NUM_TASKS=2}"
: "${MAX_STEPS_CAP=4}"
: "${MAX_NEW_TOKENS:=16}"
: "${BATCH_SIZE:=2}"
# SFT
: "${SFT_NUM_TRAJ=4}"
: "${SFT_EPOCHS:=2}"
: "${SFT_LR:=1e-3}"
: "${SFT_WARMUP:=0.0}"
: "${SFT_BATCH:=2}"
: "${SFT_GRAD_ACCUM:=1}"
# Long enough for the prompt and the expert's first turn (WebShop's prompt with its example is ~2,060
# SmolLM2 tokens): later turns may be cut, which the tiny model does not mind.
case "$ENV_NAME" in
  webshop) : "${SFT_MAX_LEN:=2560}" "${PRM_MAX_LEN:=3072}" ;;
esac
: "${SFT_MAX_LEN:=1536}"
# Exploration and progress estimator
: "${EXPLORE_TASKS=2}"
: "${EXPLORE_M:=2}"
: "${PRM_EPOCHS:=20}"
: "${PRM_BATCH:=2}"
: "${PRM_MAX_LEN:=2048}"
: "${PRM_VAL_FRACTION:=0.5}"
# PPO
: "${PPO_ITERS:=2}"
: "${PPO_ROLLOUTS:=2}"
: "${PPO_EPOCHS:=1}"
: "${PPO_MB:=1}"
: "${PPO_ACCUM:=1}"
: "${PPO_LR:=1e-3}"
