#!/usr/bin/env bash
# Load sweep: runs imginterp-load against model services at several concurrency levels (and
# optionally open-loop rates), then benchmarks/load/report.py over the summaries.
#
#   benchmarks/load/sweep.sh                       # own stack; edges and classify at c = 1 2 4 8
#   benchmarks/load/sweep.sh --warmup 1 --duration 3 --concurrency "1 2"
#   benchmarks/load/sweep.sh --stack_port 18000    # use a stack already running at that base port
#
# Options:
#   --out DIR            where json/, csv/, report.md and the PNGs go [<repo>/out/load]
#   --families "A B"     image-in families: edges classify pose segment detect upscale [edges classify]
#   --concurrency "..."  closed-loop levels [1 2 4 8]
#   --rates "..."        open-loop rates in requests/s, Poisson (none by default)
#   --warmup S           warm-up seconds of each run [3]
#   --duration S         measured seconds of each run [10]
#   --image FILE         the request image [person.jpg from deploy/fetch-samples.sh]
#   --stack_port N       do not start a stack: use the one at base port N (deploy/local/stack.sh
#                        layout: family i at N+i, its /metrics at N+100+i)
#   --note TEXT          a paragraph for the report (repeatable)
#
# Without --stack_port the script starts deploy/local/stack.sh on a free base port with its own
# state folder (<out>/stack) and a model store holding only the requested families (classify
# falls back to the SqueezeNet test fixture, random weights, when the store has no classifier),
# and stops it on exit. Environment: IMGINTERP_BUILD_DIR [<repo>/build], IMGINTERP_MODEL_STORE.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${IMGINTERP_BUILD_DIR:-$repo/build}
store=${IMGINTERP_MODEL_STORE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter/models}
load="$build/benchmarks/load/imginterp-load"

out="$repo/out/load"
families="edges classify"
concurrency="1 2 4 8"
rates=""
warmup=3
duration=10
image=""
stack_port=""
notes=()

usage() { sed -n '2,25p' "$0"; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --families) families=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --stack_port) stack_port=$2; shift 2 ;;
    --note) notes+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    *) echo "sweep: unknown option $1" >&2; usage ;;
  esac
done

log() { echo "sweep: $*" >&2; }

[ -x "$load" ] || { log "missing $load: cmake --build $build --target imginterp-load"; exit 1; }
if [ -z "$image" ]; then
  image="$("$repo/deploy/fetch-samples.sh")/person.jpg"
fi
[ -r "$image" ] || { log "cannot read the image $image"; exit 1; }

# family -> port offset in the stack layout, typed method, request JSON.
offset_of() {
  case "$1" in
    edges) echo 1 ;; classify) echo 2 ;; pose) echo 3 ;; segment) echo 4 ;; detect) echo 5 ;;
    upscale) echo 6 ;;
    *) log "family '$1' is not an image-in family this sweep knows"; exit 1 ;;
  esac
}
method_of() {
  case "$1" in
    edges) echo imginterp.v1.EdgesService/Detect ;;
    classify) echo imginterp.v1.ClassifyService/Classify ;;
    pose) echo imginterp.v1.PoseService/Estimate ;;
    segment) echo imginterp.v1.SegmentService/Segment ;;
    detect) echo imginterp.v1.DetectService/Detect ;;
    upscale) echo imginterp.v1.UpscaleService/Upscale ;;
  esac
}
request_of() {
  case "$1" in
    classify) echo '{"top_k": 5}' ;;
    *) echo '{}' ;;
  esac
}

# A base port whose stack ports (base..base+23, base+90, base+100..base+123) are all free.
free_base_port() {
  /usr/bin/python3 - <<'EOF'
import random, socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
for _ in range(200):
    base = random.randrange(20000, 40000, 10)
    ports = list(range(base, base + 24)) + [base + 90] + list(range(base + 100, base + 124))
    if all(free(p) for p in ports):
        print(base)
        break
else:
    raise SystemExit("no free base port found")
EOF
}

mkdir -p "$out/json" "$out/csv"
rm -f "$out"/json/*.json "$out"/csv/*.csv
stack_notes=()
if [ -z "$stack_port" ]; then
  base=$(free_base_port)
  state="$out/stack"
  sweep_store="$state/store"
  rm -rf "$sweep_store"
  mkdir -p "$sweep_store"
  for family in $families; do
    [ "$family" = edges ] && continue
    if compgen -G "$store/$family/*/config.pbtxt" >/dev/null; then
      ln -s "$store/$family" "$sweep_store/$family"
    elif [ "$family" = classify ] && [ -f "$build/test-models/squeezenet/config.pbtxt" ]; then
      ln -s "$build/test-models" "$sweep_store/classify"
      stack_notes+=("classify serves the SqueezeNet 1.1 test fixture (random weights, \
max_batch_size 8, max_queue_delay_us 5000; tests/fixtures/make_squeezenet.py): no classifier \
is in the model store.")
    else
      log "no $family models in $store/$family (deploy/models/fetch-models.sh imports them)"
      exit 1
    fi
  done
  stack_env=(IMGINTERP_BUILD_DIR="$build" IMGINTERP_STATE_DIR="$state"
             IMGINTERP_MODEL_STORE="$sweep_store" IMGINTERP_BASE_PORT="$base")
  trap 'env "${stack_env[@]}" "$repo/deploy/local/stack.sh" stop || true' EXIT
  log "starting the stack on base port $base (state in $state)"
  env "${stack_env[@]}" "$repo/deploy/local/stack.sh" start
  stack_notes+=("Own stack (deploy/local/stack.sh) on base port $base: nats-server, the \
gateway and only the measured families ($families), every process with OPENBLAS_NUM_THREADS=1.")
else
  base=$stack_port
  stack_notes+=("Stack already running at base port $base.")
fi

loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
for family in $families; do
  offset=$(offset_of "$family")
  port=$((base + offset))
  metrics="http://127.0.0.1:$((base + 100 + offset))/metrics"
  common=(--target="127.0.0.1:$port" --method="$(method_of "$family")"
          --request_json="$(request_of "$family")" --image="$image"
          --warmup_seconds="$warmup" --duration_seconds="$duration"
          --metrics_url="$metrics" --labels="service=$family")
  for c in $concurrency; do
    log "$family closed loop c=$c"
    "$load" "${common[@]}" --concurrency="$c" \
      --json="$out/json/${family}_c${c}.json" --csv="$out/csv/${family}_c${c}.csv"
  done
  for rate in $rates; do
    log "$family open loop at $rate req/s"
    "$load" "${common[@]}" --rate="$rate" \
      --json="$out/json/${family}_r${rate}.json" --csv="$out/csv/${family}_r${rate}.csv"
  done
done
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)

report_args=(--out "$out" --title "Load sweep: ${families}")
for note in "${stack_notes[@]}" "${notes[@]}"; do report_args+=(--note "$note"); done
report_args+=(--note "Image: $(basename "$image") ($(stat -c %s "$image") bytes). Machine load \
average (1/5/15 min) before the runs: $loadavg_before; after: $loadavg_after.")
/usr/bin/python3 "$repo/benchmarks/load/report.py" "${report_args[@]}" "$out/json"
log "report: $out/report.md"
