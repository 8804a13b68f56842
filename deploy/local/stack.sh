#!/usr/bin/env bash
# Starts, checks and stops the whole image-interpreter stack on loopback: nats-server with
# JetStream, every model service that has what it needs, the gateway and, on request, a
# Prometheus that scrapes them all.
#
#   deploy/local/stack.sh start    start everything, wait until all are healthy (and, with
#                                  IMGINTERP_PROMETHEUS=1, until Prometheus is ready)
#   deploy/local/stack.sh stop     stop everything (SIGTERM, drain, then SIGKILL after 15 s)
#   deploy/local/stack.sh status   show what runs and where
#
# Environment (defaults in brackets):
#   IMGINTERP_BUILD_DIR     build tree with the binaries [<repo>/build]
#   IMGINTERP_STATE_DIR     pids, logs and NATS data [<repo>/.run/local]
#   IMGINTERP_MODEL_STORE   model store with <family>/<model>/<version>/ [~/.cache/image-interpreter/models]
#   IMGINTERP_BASE_PORT     first port; gateway = base, services = base+1.., metrics = base+100.. [18000]
#   IMGINTERP_PROMETHEUS    1: also run Prometheus on base+90 (TSDB in the state dir), scraping
#                           every process started (deploy/local/prometheus.yml.in) [0]
#   IMGINTERP_PROMETHEUS_SCRAPE_INTERVAL  its scrape interval [5s]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${IMGINTERP_BUILD_DIR:-$repo/build}
state=${IMGINTERP_STATE_DIR:-$repo/.run/local}
store=${IMGINTERP_MODEL_STORE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter/models}
base=${IMGINTERP_BASE_PORT:-18000}

nats_port=$((base + 22))
nats_monitor_port=$((base + 23))
gateway_port=$base
gateway_metrics=$((base + 100))
prometheus_port=$((base + 90))
scrape_interval=${IMGINTERP_PROMETHEUS_SCRAPE_INTERVAL:-5s}
cli="$build/gateway/imginterp"

# family grpc-port metrics-port extra-flags...
# Families with a model repository start only when the store has at least one of their models
# (deploy/models/fetch-models.sh fills it); edges needs none.
services() {
  echo "edges $((base + 1)) $((base + 101))"
  local offset=2 family
  for family in classify pose segment detect upscale generate clip; do
    if compgen -G "$store/$family/*/config.pbtxt" >/dev/null; then
      echo "$family $((base + offset)) $((base + 100 + offset)) --model_repository=$store/$family"
    elif [ "$family" != classify ] && [ "${1:-}" = verbose ]; then
      log "no $family models in $store/$family: imginterp-$family not started" \
          "(deploy/models/fetch-models.sh imports them)"
    fi
    offset=$((offset + 1))
  done
}

log() { echo "stack: $*" >&2; }

start_process() {  # name command...
  local name=$1; shift
  if [ -f "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
    log "$name already running (pid $(cat "$state/$name.pid"))"
    return
  fi
  # One BLAS thread per process: OpenMP (LibTorch) and OpenBLAS pools fight over few cores.
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
    setsid "$@" >"$state/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/$name.pid"
  log "$name started (pid $!, log $state/$name.log)"
}

wait_healthy() {  # name address
  if ! "$cli" health "$2" --wait_seconds=120 >/dev/null 2>&1; then
    log "$1 did not become healthy at $2; last log lines:"
    tail -n 20 "$state/$1.log" >&2 || true
    return 1
  fi
  log "$1 healthy at $2"
}

# Writes the Prometheus configuration with one target per process this stack started.
write_prometheus_config() {
  local targets=("      - targets: [\"127.0.0.1:$gateway_metrics\"]"
                 "        labels: {component: gateway}")
  local family metrics
  while read -r family _ metrics _; do
    targets+=("      - targets: [\"127.0.0.1:$metrics\"]" "        labels: {component: $family}")
  done < <(services)
  local line
  while IFS= read -r line; do
    if [ "$line" = "@TARGETS@" ]; then
      printf '%s\n' "${targets[@]}"
    else
      printf '%s\n' "${line//@SCRAPE_INTERVAL@/$scrape_interval}"
    fi
  done <"$repo/deploy/local/prometheus.yml.in" >"$state/prometheus.yml"
}

start_prometheus() {
  local prometheus_bin
  prometheus_bin=$(command -v prometheus || echo /usr/bin/prometheus)
  [ -x "$prometheus_bin" ] || { log "missing prometheus: deploy/install-deps.sh installs it"; return 1; }
  mkdir -p "$state/prometheus"
  write_prometheus_config
  start_process prometheus "$prometheus_bin" --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/prometheus" --web.listen-address="127.0.0.1:$prometheus_port"
  local address="127.0.0.1:$prometheus_port"
  for _ in $(seq 1 300); do
    if curl -sf "http://$address/-/ready" >/dev/null 2>&1; then
      echo "prometheus=$address" >>"$state/endpoints"
      log "prometheus ready at http://$address (scrapes every $scrape_interval)"
      return
    fi
    sleep 0.1
  done
  log "prometheus did not become ready at $address; last log lines:"
  tail -n 20 "$state/prometheus.log" >&2 || true
  return 1
}

start() {
  for bin in "$cli" "$build/gateway/imginterp-gateway" "$build/services/edges/imginterp-edges"; do
    [ -x "$bin" ] || { log "missing $bin: build first (cmake --build $build)"; exit 1; }
  done
  mkdir -p "$state/nats"
  sed -e "s#@NATS_PORT@#$nats_port#" -e "s#@NATS_MONITOR_PORT@#$nats_monitor_port#" \
      -e "s#@STATE_DIR@#$state#" "$repo/deploy/local/nats-server.conf.in" >"$state/nats-server.conf"
  local nats_bin
  nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  start_process nats "$nats_bin" -c "$state/nats-server.conf"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
    sleep 0.1
  done
  local nats_url="nats://127.0.0.1:$nats_port"
  while read -r family port metrics extra; do
    # shellcheck disable=SC2086
    start_process "$family" "$build/services/$family/imginterp-$family" \
      --bind_host=127.0.0.1 --grpc_port="$port" --metrics_port="$metrics" \
      --nats_url="$nats_url" $extra
  done < <(services verbose)
  start_process gateway "$build/gateway/imginterp-gateway" --grpc_port="$gateway_port" \
    --metrics_port="$gateway_metrics" --nats_url="$nats_url"
  while read -r family port _; do
    wait_healthy "$family" "127.0.0.1:$port"
  done < <(services)
  wait_healthy gateway "127.0.0.1:$gateway_port"
  echo "gateway=127.0.0.1:$gateway_port" >"$state/endpoints"
  if [ "${IMGINTERP_PROMETHEUS:-0}" = 1 ]; then start_prometheus; fi
  log "all healthy; gateway at 127.0.0.1:$gateway_port, NATS at $nats_url"
}

stop() {
  local names=(prometheus gateway)
  while read -r family _; do names+=("$family"); done < <(services)
  names+=(classify pose segment detect upscale generate clip nats)
  for name in "${names[@]}"; do
    [ -f "$state/$name.pid" ] || continue
    local pid
    pid=$(cat "$state/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop in 15 s; killing"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      log "$name stopped"
    fi
    rm -f "$state/$name.pid"
  done
}

status() {
  for f in "$state"/*.pid; do
    [ -e "$f" ] || { echo "nothing running"; return; }
    local name pid
    name=$(basename "$f" .pid)
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then echo "$name: running (pid $pid)"; else echo "$name: dead"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
