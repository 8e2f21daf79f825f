# Sourced by the stage scripts: repo root, python, and the configuration. Precedence, the first to set a
# variable wins (every file sets defaults with `: "${VAR:=value}"`):
#   1. variables on the command line           (NUM_TASKS=20 PROFILE=gpu bash scripts/run_pipeline.sh)
#   2. scripts/configs/$ENV_NAME.sh            the environment's facts, and the lines you uncomment there
#   3. scripts/profiles/$PROFILE.sh            the scale (default profile: demo)
#   4. scripts/profiles/base.sh                every default a profile does not set
# Then two budget caps apply: MAX_STEPS_CAP and EVAL_SPLITS_CAP narrow the environment's MAX_STEPS and
# EVAL_SPLITS (the demo and tiny profiles use them).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [[ -x "${SPA_VENV:-$REPO/.venv}/bin/python" && "${SPA_SYSTEM_PYTHON:-0}" != "1" ]]; then
  PY="${SPA_VENV:-$REPO/.venv}/bin/python"
else
  PY="$(command -v python3)"
fi
PROFILE="${PROFILE:-demo}"
load_config() {  # load_config ENV_NAME
  local env_cfg="$REPO/scripts/configs/$1.sh" prof="$REPO/scripts/profiles/$PROFILE.sh"
  ENV_NAME="$1"  # profiles may set values per environment (case "$ENV_NAME" in ...)
  [[ -f "$env_cfg" ]] || { echo "no config $env_cfg (scripts/configs/: $(ls "$REPO/scripts/configs" | tr '\n' ' '))" >&2; exit 2; }
  [[ -f "$prof" && "$PROFILE" != base ]] || { echo "unknown PROFILE=$PROFILE (scripts/profiles/: $(ls "$REPO/scripts/profiles" | grep -v '^base.sh$' | tr '\n' ' '))" >&2; exit 2; }
  : "${RUN_DIR:=runs/$PROFILE/$1}"
  # shellcheck disable=SC1090
  source "$env_cfg"
  # shellcheck disable=SC1090
  source "$prof"
  # shellcheck disable=SC1091
  source "$REPO/scripts/profiles/base.sh"
  if [[ -n "$MAX_STEPS_CAP" ]] && (( MAX_STEPS > MAX_STEPS_CAP )); then
    MAX_STEPS="$MAX_STEPS_CAP"
  fi
  if [[ -n "$EVAL_SPLITS_CAP" ]]; then
    read -ra _splits <<< "$EVAL_SPLITS"
    EVAL_SPLITS="${_splits[*]:0:EVAL_SPLITS_CAP}"
  fi
}
ppo_dir() {  # ppo_dir VARIANT: the PPO output folder, ppo_<mode>[-turn]_<variant> (-turn: turn-level GAE)
  echo "$RUN_DIR/ppo_${PPO_MODE}$([[ "$PPO_GAE_LEVEL" == token ]] || echo "-$PPO_GAE_LEVEL")_$1"
}
machine_tag() {  # the machine a stage ran on, for timings.tsv: CPU model, cores, bf16 instructions, GPU
  # (machines of one kind differ: a CPU without bf16 trains in fp32, several times slower)
  local cpu gpu=""
  cpu="$(grep -m1 "model name" /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
  [[ -n "$cpu" ]] || cpu="$(uname -m)"
  cpu+=" x $(nproc 2>/dev/null || echo "?")"
  if grep -qwE "avx512_bf16|amx_bf16|bf16" /proc/cpuinfo 2>/dev/null; then cpu+=", bf16"; else cpu+=", no bf16"; fi
  command -v nvidia-smi >/dev/null 2>&1 && gpu="$(nvidia-smi -L 2>/dev/null | head -1 | cut -d'(' -f1)"
  echo "$cpu${gpu:+; $gpu}"
}
stage() {  # stage NAME command...: run a pipeline stage, appending its wall time to $TIMINGS
  # (stage, seconds, this run's start $RUN_STARTED, PPO mode, machine [; TIMINGS_NOTE: e.g. jobs side by side])
  local name="$1" t0; shift
  t0=$(date +%s)
  echo "=== [$name] $(date -u +%H:%M:%S)"
  "$@"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" "$RUN_STARTED" "${PPO_MODE:-}" \
    "$(machine_tag)${TIMINGS_NOTE:+; $TIMINGS_NOTE}" >> "$TIMINGS"
}
vllm_dtype() {  # the vLLM --dtype for VLLM_DTYPE / DTYPE (empty: vLLM's choice)
  if [[ -n "${VLLM_DTYPE:-}" ]]; then echo "$VLLM_DTYPE"
  elif [[ "${DTYPE:-}" == bf16 ]]; then echo bfloat16
  elif [[ "${DTYPE:-}" == fp32 ]]; then echo float32
  fi
}
with_rollout_server() {  # with_rollout_server MODEL LOG_NAME SCRIPT ARGS...: under ROLLOUT_BACKEND=vllm|serve,
  # run this stage script again (bash SCRIPT ARGS...) inside spa_rl.agent.managed_server, which starts a server
  # for MODEL on 127.0.0.1 (a free port), serving it under the string MODEL (what the client sends), waits
  # until it serves, and stops it when the script ends, fails or is interrupted; the script then runs with
  # BACKEND=openai and API_BASE. The server's log: $RUN_DIR/logs/LOG_NAME.log. Returns at once (the stage
  # runs in this shell) under ROLLOUT_BACKEND=hf and inside the server's run.
  local model="$1" log="$2"; shift 2
  case "$ROLLOUT_BACKEND" in
    hf) return 0 ;;
    vllm|serve) ;;
    *) echo "unknown ROLLOUT_BACKEND=$ROLLOUT_BACKEND (hf | vllm | serve)" >&2; exit 2 ;;
  esac
  [[ "${SPA_ROLLOUT_SERVER:-}" == 1 ]] && return 0
  local args=(--engine "$ROLLOUT_BACKEND" --model "$model" --log "$RUN_DIR/logs/$log.log" --seed "$SEED"
              --max-model-len "$VLLM_MAX_MODEL_LEN" --start-timeout "$VLLM_START_TIMEOUT") dt
  [[ "$ROLLOUT_BACKEND" == vllm ]] && args+=(--python "$VLLM_PYTHON")
  dt="$(vllm_dtype)"; [[ -n "$dt" ]] && args+=(--dtype "$dt")
  [[ -n "$VLLM_MEM_FRACTION" ]] && args+=(--mem-fraction "$VLLM_MEM_FRACTION")
  [[ -n "$VLLM_ARGS" ]] && args+=("--extra-args=$VLLM_ARGS")
  exec "$PY" -m spa_rl.agent.managed_server "${args[@]}" -- env BACKEND=openai bash "$@"
}
# --- training launches (SFT, estimator, PPO): one process, or accelerate over NUM_GPUS GPUs ---------------
check_launch() {  # check_launch [VAR...]: stop now when NUM_GPUS, or the DeepSpeed config in a VAR named
  # (SFT_DEEPSPEED, PRM_DEEPSPEED), cannot run on this machine, with a message that names what is missing
  # (spa_rl/launch.py); notes a DeepSpeed config that one process leaves unused.
  local a=(--num-gpus "$NUM_GPUS") v
  if [[ "$NUM_GPUS" == 1 ]]; then  # one process: nothing to check (no python start for the CPU profiles)
    for v in "$@"; do
      [[ -z "${!v}" ]] || echo "note: $v=${!v} applies with NUM_GPUS > 1; one process trains without DeepSpeed" >&2
    done
    return 0
  fi
  for v in "$@"; do a+=(--deepspeed "$v=${!v}"); done
  "$PY" -m spa_rl.launch "${a[@]}" || exit 2
}
train_launch() {  # train_launch VAR|- SCRIPT ARGS...: run a training recipe. NUM_GPUS=1: one process (GPU 0 or
  # the CPU), no DeepSpeed. NUM_GPUS>1: accelerate launch over NUM_GPUS GPUs (scripts/accelerate/ddp.yaml),
  # with --deepspeed "${!VAR}" when VAR (SFT_DEEPSPEED, PRM_DEEPSPEED) is set; "-": no DeepSpeed (PPO).
  local var="$1" script="$2" ds=""; shift 2
  [[ "$var" != - ]] && ds="${!var}"
  local rc=0
  if (( NUM_GPUS > 1 )); then
    "$PY" -m accelerate.commands.launch --config_file scripts/accelerate/ddp.yaml --num_processes "$NUM_GPUS" \
      "$script" "$@" ${ds:+--deepspeed "$ds"} || rc=$?
  else
    "$PY" "$script" "$@" || rc=$?
  fi
  if (( rc == 137 )); then  # SIGKILL: on Linux nearly always the kernel's out-of-memory killer
    echo "error: $script was killed (SIGKILL, exit 137), most likely out of memory (dmesg says): lower the" \
         "batch or the length (SFT_BATCH, SFT_MAX_LEN; PRM_BATCH, PRM_MAX_LEN; PPO_MB or --max-tokens-per-micro-batch" \
         "in PPO_EXTRA), or free memory; the CPU profiles (demo, study) are sized for 24 GB" >&2
  fi
  return "$rc"
}
