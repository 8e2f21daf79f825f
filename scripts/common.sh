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
stage() {  # stage NAME command...: run a pipeline stage, appending its wall time to $TIMINGS
  # (stage, seconds, this run's start $RUN_STARTED, PPO mode)
  local name="$1" t0; shift
  t0=$(date +%s)
  echo "=== [$name] $(date -u +%H:%M:%S)"
  "$@"
  printf '%s\t%s\t%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" "$RUN_STARTED" "${PPO_MODE:-}" >> "$TIMINGS"
}
