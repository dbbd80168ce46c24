# Sourced by the start/stop scripts: whether a recorded PID still runs. A zombie still answers kill -0;
# only a process that is not in state Z (or X) counts as running.
alive() {
  local pid=$1 state
  [[ -r /proc/$pid/stat ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}
