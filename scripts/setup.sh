#!/usr/bin/env bash
# Install the Debian packages bmfm needs to build, run and test (idempotent).
# Build/runtime: HDF5, OpenBLAS, igraph (+ ARPACK, for its static link), cJSON,
# libyaml, zlib, OpenMPI, cmocka.
# Test oracles: Debian's python3 with torch, numpy, anndata, h5py, sklearn,
# scipy, igraph and leidenalg (always run as /usr/bin/python3). Benchmarks:
# jemalloc for the PyTorch baselines (the allocator its CPU tuning guides use).
set -euo pipefail
PKGS=(build-essential pkg-config libhdf5-dev libopenblas-dev libigraph-dev libarpack2-dev libcjson-dev
      libyaml-dev zlib1g-dev libopenmpi-dev libcmocka-dev hdf5-tools
      python3 python3-numpy python3-scipy python3-torch python3-anndata python3-h5py
      python3-pandas python3-sklearn python3-igraph python3-leidenalg libjemalloc2)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
