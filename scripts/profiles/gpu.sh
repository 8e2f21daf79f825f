# gpu: SmolLM2-135M-Instruct (or MODEL=any local folder) on one GPU, full task sets.
: "${MODEL:=models/smollm2-135m-instruct}"
: "${NUM_TASKS:=}"          # empty: every task of the split
: "${MAX_NEW_TOKENS:=128}"
: "${BATCH_SIZE:=64}"
: "${DTYPE:=bfloat16}"
