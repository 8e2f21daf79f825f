# demo: SmolLM2-135M-Instruct on CPU, a few tasks per stage; the README's main job.
: "${MODEL:=models/smollm2-135m-instruct}"
: "${NUM_TASKS:=5}"
: "${MAX_NEW_TOKENS:=128}"
: "${BATCH_SIZE:=5}"
