#!/usr/bin/env bash
# Installs the C libraries moe-compress links against (OpenBLAS, LAPACKE, oneDNN), and any packages
# named as arguments, if they are missing.
set -euo pipefail
# Extra package names may be given (scripts/test.sh adds the test-only ones).
packages=(libopenblas-dev liblapacke-dev libdnnl-dev "$@")
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# CMatmul uses oneDNN 2.x's matmul API (3.0 removed it); say so here rather than in a compiler error.
dnnl_version="$(dpkg-query -W -f='${Version}' libdnnl-dev 2>/dev/null || true)"
case "$dnnl_version" in
  2.*) ;;
  *) echo "error: libdnnl-dev ${dnnl_version:-is not installed}; moe-compress needs oneDNN 2.x (Debian bookworm's 2.6)" >&2; exit 1 ;;
esac
