# Sourced by the stage scripts: repo root, python, and the layered configuration. Every file sets
# defaults with `: "${VAR:=value}"`, so the first to set a variable wins: environment variables, then
# the profile (scripts/profiles/$PROFILE.sh: the scale), then the environment's config
# (scripts/configs/$ENV_NAME.sh: the environment's own settings). A plain `VAR=value` line in the
# environment's config overrides all of them.
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
  ENV_NAME="$1"  # profiles may choose per environment
  [[ -f "$env_cfg" ]] || { echo "no config $env_cfg" >&2; exit 2; }
  [[ -f "$prof" ]] || { echo "unknown PROFILE=$PROFILE (scripts/profiles/: $(ls "$REPO/scripts/profiles" | tr '\n' ' '))" >&2; exit 2; }
  # shellcheck disable=SC1090
  source "$prof"
  # shellcheck disable=SC1090
  source "$env_cfg"
  : "${RUN_DIR:=runs/$PROFILE/$1}"
  # A profile may cap the environment's step limit (the demo does, to fit its time budget).
  if [[ -n "${MAX_STEPS_CAP:-}" && -n "${MAX_STEPS:-}" ]] && (( MAX_STEPS > MAX_STEPS_CAP )); then
    MAX_STEPS="$MAX_STEPS_CAP"
  fi
}
ppo_dir() {  # ppo_dir VARIANT: the PPO output folder, ppo_<mode>[-turn]_<variant> (-turn: turn-level GAE)
  local level="${PPO_GAE_LEVEL:-token}"
  echo "$RUN_DIR/ppo_${PPO_MODE:-offline}$([[ "$level" == token ]] || echo "-$level")_$1"
}
stage() {  # stage NAME command...: run a pipeline stage, appending its wall time to $TIMINGS
  # (stage, seconds, this run's start $RUN_STARTED, PPO mode)
  local name="$1" t0; shift
  t0=$(date +%s)
  echo "=== [$name] $(date -u +%H:%M:%S)"
  "$@"
  printf '%s\t%s\t%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" "$RUN_STARTED" "${PPO_MODE:-}" >> "$TIMINGS"
}
