#!/usr/bin/env bash
# Installs everything Bulwark and its tests need on a fresh Debian 12 machine,
# then builds. Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  curl libssl-dev qemu-utils qemu-system-common qemu-system-x86 libnbd-bin nbdkit e2fsprogs
  postgresql redis-server etcd-server restic fio busybox-static
  python3-openstackclient python3-cinderclient tempest
  swift swift-proxy swift-object swift-container swift-account python3-swift
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian starts these as system services on install; the tests start their own.
  for svc in postgresql redis-server etcd swift-account swift-container swift-object swift-proxy; do $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
