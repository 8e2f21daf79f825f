# tiny: tests and CI. Random 2-layer Llama with the real tokenizer, a handful of short episodes.
: "${MODEL:=models/tiny-llama}"
: "${NUM_TASKS:=2}"
: "${MAX_STEPS:=4}"
: "${MAX_NEW_TOKENS:=16}"
: "${BATCH_SIZE:=2}"
