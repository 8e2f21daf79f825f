# paper: Llama-3.2-3B-Instruct at the paper's settings; rollouts best served by vLLM
# (BACKEND=openai API_BASE=http://127.0.0.1:8000/v1 MODEL=<served name>).
: "${MODEL:?set MODEL to a local Llama-3.2-3B-Instruct folder (or the served model name with BACKEND=openai)}"
: "${NUM_TASKS:=}"
: "${MAX_NEW_TOKENS:=256}"
: "${BATCH_SIZE:=64}"
: "${DTYPE:=bfloat16}"
