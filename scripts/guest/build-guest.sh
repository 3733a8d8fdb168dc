#!/usr/bin/env bash
# Builds the tiny Linux test guest used by Bulwark's end-to-end tests with real
# VMs: a Debian cloud kernel plus an initramfs holding busybox, qemu-ga (with
# its shared libraries) and the virtio modules, and an /init that mounts the
# data disks, optionally runs a record writer on each, and starts the agent.
#
# Network: only Debian's package archive, through `apt-get download` (the
# package lists must already be there: `apt-get update`). Nothing else.
#
# Cache: BULWARK_GUEST_CACHE (default /var/cache/bulwark-guest)
#   debs/                 downloaded .deb files (reused across builds)
#   builds/KEY/vmlinuz    the kernel
#   builds/KEY/initramfs.img  gzip'd newc cpio
#   builds/KEY/manifest.txt   inputs the KEY was hashed from
#   current -> builds/KEY
# KEY hashes this script (so the embedded /init) and the versions of every
# package used. If builds/KEY exists the script only prints the paths.
#
# Env:
#   BULWARK_GUEST_CACHE       cache dir (see above)
#   BULWARK_GUEST_KERNEL_PKG  pin a kernel package (default: the newest
#                             linux-image-6.1.0-N-cloud-amd64 apt knows)
#
# Output (stdout, for `eval "$(scripts/guest/build-guest.sh)"`):
#   BULWARK_GUEST_KERNEL=/…/vmlinuz
#   BULWARK_GUEST_INITRD=/…/initramfs.img
# Progress goes to stderr.
#
# Kernel command line options the guest's /init understands:
#   bulwark.data=vdb,vdc     disks to wait for and mount (ext4) at /data/vdX;
#                            the host makes the filesystems (mke2fs)
#   bulwark.writer=1         start a record writer on every data disk: appends
#                            "seq N <epoch.centiseconds>" lines to
#                            /data/vdX/records.log, continuing after the last
#                            N already in the file
#   bulwark.writer_usleep=US pause between records (default 20000)
#   bulwark.wait=SECONDS     how long to wait for each disk / the agent port
#                            (default 20)
# The agent is started only after the data disks are mounted and the writers
# started: an answered guest-ping means the guest is ready.
set -euo pipefail

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
CACHE="${BULWARK_GUEST_CACHE:-/var/cache/bulwark-guest}"
ARCH=amd64
# Modules to load, in this order (dependencies are added from the modules'
# own "depends=" info). ext4 is appended if the kernel does not build it in.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_console)
# Packages providing qemu-ga's shared libraries and the dynamic loader. Taken
# from the host when installed there (same Debian release), else downloaded.
LIB_PKGS=(libc6 libudev1 libnuma1 liburing2 libglib2.0-0 libpcre2-8-0)

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(dpkg --print-architecture)" = "$ARCH" ] || die "only $ARCH hosts are supported"
for t in apt-get apt-cache dpkg-deb dpkg-query ldd gzip sha256sum flock; do
  command -v "$t" >/dev/null || die "missing tool: $t"
done

installed() { # PKG -> installed version or empty
  dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1:$ARCH" 2>/dev/null | awk '$1 == "installed" { print $2 }' || true
}
emit() {
  echo "BULWARK_GUEST_KERNEL=$OUT/vmlinuz"
  echo "BULWARK_GUEST_INITRD=$OUT/initramfs.img"
}
built() { [ -f "$OUT/initramfs.img" ] && [ -f "$OUT/vmlinuz" ]; }

# ---- fast path --------------------------------------------------------------------
# The key depends only on this script, the apt lists and dpkg's database (plus
# the kernel pin): remember it, so an unchanged machine skips apt-cache, which
# costs about half a second per call here.
MEMO="$CACHE/key.memo"
MEMO_IN="$(sha256sum "$SELF" | cut -d" " -f1) ${BULWARK_GUEST_KERNEL_PKG:-newest} $(stat -c %Y /var/lib/apt/lists /var/lib/dpkg/status | paste -sd" ")"
if [ -f "$MEMO" ]; then
  read -r memo_key memo_in <"$MEMO" || true
  if [ "${memo_in:-}" = "$MEMO_IN" ]; then
    OUT="$CACHE/builds/$memo_key"
    if built; then log "up to date (key $memo_key, $(sed -n 's/^kernel //p' "$OUT/manifest.txt"))"; emit; exit 0; fi
  fi
fi

# ---- inputs -----------------------------------------------------------------------
KPAT="${BULWARK_GUEST_KERNEL_PKG:-^linux-image-6\.1\.0-[0-9]+-cloud-amd64\$}"
declare -A CAND=()
while read -r pkg ver; do CAND[$pkg]="$ver"; done < <(
  LC_ALL=C apt-cache policy "$KPAT" busybox-static qemu-guest-agent "${LIB_PKGS[@]}" 2>/dev/null |
    awk '/^[^ ]/ { p = $1; sub(/:$/, "", p); sub(/:'"$ARCH"'$/, "", p) } $1 == "Candidate:" && $2 != "(none)" { print p, $2 }')
if [ -n "${BULWARK_GUEST_KERNEL_PKG:-}" ]; then
  KPKG="$BULWARK_GUEST_KERNEL_PKG"
else
  KPKG="$(printf '%s\n' "${!CAND[@]}" | grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | sort -V | tail -n 1 || true)"
  [ -n "$KPKG" ] || die "no linux-image-6.1.0-*-cloud-amd64 in the apt lists (run apt-get update?)"
fi
KVER="${CAND[$KPKG]:-}"; [ -n "$KVER" ] || die "no candidate for $KPKG (run apt-get update?)"
BBVER="${CAND[busybox-static]:-}"; [ -n "$BBVER" ] || die "no candidate for busybox-static"
GAVER="${CAND[qemu-guest-agent]:-}"; [ -n "$GAVER" ] || die "no candidate for qemu-guest-agent"

declare -A LIBVER LIBSRC
for p in "${LIB_PKGS[@]}"; do
  v="$(installed "$p")"
  if [ -n "$v" ]; then LIBVER[$p]="$v"; LIBSRC[$p]=host
  else v="${CAND[$p]:-}"; [ -n "$v" ] || die "no candidate for $p"; LIBVER[$p]="$v"; LIBSRC[$p]=download; fi
done

MANIFEST="$(
  echo "script $(sha256sum "$SELF" | cut -d' ' -f1)"
  echo "kernel $KPKG $KVER"
  echo "busybox busybox-static $BBVER"
  echo "agent qemu-guest-agent $GAVER"
  for p in "${LIB_PKGS[@]}"; do echo "lib $p ${LIBVER[$p]} ${LIBSRC[$p]}"; done
)"
KEY="$(printf '%s\n' "$MANIFEST" | sha256sum | cut -c1-16)"
OUT="$CACHE/builds/$KEY"

remember() { mkdir -p "$CACHE" && echo "$KEY $MEMO_IN" >"$MEMO.$$" && mv -f "$MEMO.$$" "$MEMO"; }
if built; then
  log "up to date (key $KEY, $KPKG $KVER)"
  remember || true; emit; exit 0
fi

mkdir -p "$CACHE/debs" "$CACHE/builds"
exec 9>"$CACHE/.lock"
flock 9
if built; then emit; exit 0; fi # built meanwhile

T0=$(date +%s.%N)
WORK="$(mktemp -d "$CACHE/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---- download -----------------------------------------------------------------
debfile() { echo "$CACHE/debs/${1}_${2//:/%3a}_$ARCH.deb"; } # PKG VER
fetch() { # PKG VER -> path of the .deb in the cache
  local f; f="$(debfile "$1" "$2")"
  if [ ! -s "$f" ]; then
    log "apt-get download $1=$2"
    (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "$1=$2" >&2) || die "apt-get download $1=$2 failed"
    [ -s "$f" ] || die "apt-get download did not produce $f"
  fi
  echo "$f"
}
KDEB="$(fetch "$KPKG" "$KVER")"
BBDEB="$(fetch busybox-static "$BBVER")"
GADEB="$(fetch qemu-guest-agent "$GAVER")"
USED_DEBS=("$KDEB" "$BBDEB" "$GADEB")

X="$WORK/x"; mkdir -p "$X/kernel" "$X/pkgs"
# only the kernel, its config and the module trees our modules (and ext4's,
# should it ever be a module) come from: writing all 100 MB costs a second
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$X/kernel" --wildcards './boot/*' \
  './lib/modules/*/modules.order' './lib/modules/*/modules.builtin' \
  './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/drivers/block/*' \
  './lib/modules/*/kernel/drivers/char/*' './lib/modules/*/kernel/fs/*' \
  './lib/modules/*/kernel/lib/*' './lib/modules/*/kernel/crypto/*' './lib/modules/*/kernel/arch/*'
dpkg-deb -x "$BBDEB" "$X/pkgs"
dpkg-deb -x "$GADEB" "$X/pkgs"
for p in "${LIB_PKGS[@]}"; do
  if [ "${LIBSRC[$p]}" = download ]; then
    d="$(fetch "$p" "${LIBVER[$p]}")"; USED_DEBS+=("$d")
    dpkg-deb -x "$d" "$X/libs"
  fi
done

# ---- assemble the root --------------------------------------------------------
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib/modules,lib/x86_64-linux-gnu,lib64,etc,proc,sys,dev,run,tmp,data,root,var}
ln -s ../run "$R/var/run"
chmod 1777 "$R/tmp"

# busybox and its applet links (relative symlinks at the paths busybox lists)
install -m 0755 "$X/pkgs/bin/busybox" "$R/bin/busybox"
while read -r a; do
  [ "$a" = bin/busybox ] && continue
  case "$a" in bin/*) target=busybox ;; sbin/* | usr/bin/*) target=../bin/busybox ;; usr/sbin/*) target=../../bin/busybox ;; *) continue ;; esac
  [ -e "$R/$a" ] || ln -s "$target" "$R/$a"
done < <("$X/pkgs/bin/busybox" --list-full)
[ -L "$R/bin/sh" ] || ln -s busybox "$R/bin/sh"

# qemu-ga, its libraries and the loader
install -m 0755 "$X/pkgs/usr/sbin/qemu-ga" "$R/usr/sbin/qemu-ga"
LDPATH=""
[ -d "$X/libs" ] && LDPATH="$X/libs/lib/x86_64-linux-gnu:$X/libs/usr/lib/x86_64-linux-gnu"
LDD_OUT="$(LD_LIBRARY_PATH="$LDPATH" ldd "$R/usr/sbin/qemu-ga")"
if grep -q 'not found' <<<"$LDD_OUT"; then
  die "qemu-ga needs libraries not provided by LIB_PKGS (${LIB_PKGS[*]}):"$'\n'"$LDD_OUT"
fi
LIBS_USED=""
while read -r name arrow path _; do
  case "$name" in linux-vdso.so.*) continue ;; esac
  if [ "$arrow" = "=>" ]; then src="$path"; dst="$R/lib/x86_64-linux-gnu/$name"
  else src="$name"; dst="$R$name"; fi # the loader: "/lib64/ld-linux-x86-64.so.2 (0x…)"
  real="$(readlink -f "$src")"
  case "$real" in
    "$X"/libs/*) owner="download" ;;
    *) owner="$(dpkg -S "$real" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
       [ -n "$owner" ] || owner="$(dpkg -S "$src" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
       case " ${LIB_PKGS[*]} " in *" $owner "*) ;; *) log "warning: $src comes from '${owner:-?}', not in LIB_PKGS (cache key misses it)" ;; esac ;;
  esac
  mkdir -p "$(dirname "$dst")"
  install -m 0755 "$real" "$dst"
  LIBS_USED+="  $(basename "$dst") <- $real ($owner)"$'\n'
done <<<"$LDD_OUT"

# kernel modules (flat, in load order)
KREL="$(basename "$(ls -d "$X/kernel/lib/modules/"*)")"
MODDIR="$X/kernel/lib/modules/$KREL"
KCONFIG="$X/kernel/boot/config-$KREL"
[ -f "$KCONFIG" ] || die "no kernel config in $KPKG"
WANT=("${MODULES[@]}")
if grep -q '^CONFIG_EXT4_FS=y' "$KCONFIG"; then log "ext4 is built into $KREL"
elif grep -q '^CONFIG_EXT4_FS=m' "$KCONFIG"; then log "ext4 is a module in $KREL: adding it"; WANT+=(ext4)
else die "kernel $KREL has no ext4"; fi

declare -A MODPATH
while read -r rel; do
  b="${rel##*/}"; b="${b%%.ko*}"; MODPATH[${b//-/_}]="$MODDIR/$rel"
done <"$MODDIR/modules.order"
declare -A SEEN
ORDER=()
visit() {
  local m="${1//-/_}" deps d
  [ -n "${SEEN[$m]:-}" ] && return 0
  SEEN[$m]=1
  if grep -qE "/${m//_/[-_]}\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; then return 0; fi # built in
  [ -n "${MODPATH[$m]:-}" ] || die "module $m not found in $KREL"
  [ -f "${MODPATH[$m]}" ] || die "module ${MODPATH[$m]#"$MODDIR/"} was not extracted: add its directory to the tar patterns"
  deps="$(tr '\0' '\n' <"${MODPATH[$m]}" | sed -n 's/^depends=//p' | head -n1)"
  for d in ${deps//,/ }; do visit "$d"; done
  ORDER+=("$m")
}
for m in "${WANT[@]}"; do visit "$m"; done
for m in "${ORDER[@]}"; do
  case "${MODPATH[$m]}" in *.ko) ;; *) die "module ${MODPATH[$m]} is compressed; busybox insmod wants plain .ko" ;; esac
  install -m 0644 "${MODPATH[$m]}" "$R/lib/modules/$m.ko"
done
printf '%s\n' "${ORDER[@]}" >"$R/etc/modules.load"

printf '%s\n' "$MANIFEST" >"$R/etc/bulwark-guest.manifest"

# ---- /init ------------------------------------------------------------------------
cat >"$R/init" <<'INIT'
#!/bin/sh
# Bulwark test guest init (PID 1), generated by scripts/guest/build-guest.sh.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
log() { echo "bulwark-init: $*"; }

data="" writer=0 writer_usleep=20000 wait_s=20
for opt in $(cat /proc/cmdline); do
  case "$opt" in
    bulwark.data=*) data="$(echo "${opt#*=}" | tr ',' ' ')" ;;
    bulwark.writer=*) writer="${opt#*=}" ;;
    bulwark.writer_usleep=*) writer_usleep="${opt#*=}" ;;
    bulwark.wait=*) wait_s="${opt#*=}" ;;
  esac
done

for m in $(cat /etc/modules.load); do
  insmod "/lib/modules/$m.ko" || log "insmod $m failed"
done

# wait_for TEST-ARGS…: poll every 50 ms, up to $wait_s seconds
wait_for() {
  i=$((wait_s * 20))
  while ! test "$@"; do
    i=$((i - 1)); [ "$i" -gt 0 ] || return 1
    usleep 50000
  done
}

for d in $data; do
  if ! wait_for -b "/dev/$d"; then log "disk /dev/$d did not appear"; continue; fi
  mkdir -p "/data/$d"
  if mount -t ext4 "/dev/$d" "/data/$d"; then log "mounted /dev/$d on /data/$d"
  else log "mount /dev/$d failed"; rmdir "/data/$d"; fi
done

# One record writer per mounted data disk. Builtins only in the loop (no fork
# per record but usleep); the timestamp is wall-clock seconds at start plus
# /proc/uptime's centiseconds since then.
write_records() {
  f="$1/records.log" n=0
  if [ -s "$f" ]; then
    [ -z "$(tail -c 1 "$f")" ] || echo >>"$f" # finish a torn last line
    last="$(grep '^seq [0-9][0-9]* ' "$f" | tail -n 1)"
    n="${last#seq }"; n="${n%% *}"
    case "$n" in '' | *[!0-9]*) n=0 ;; esac
  fi
  base=$(date +%s)
  read up0 _ </proc/uptime; up0="${up0%.*}${up0#*.}"
  while true; do
    n=$((n + 1))
    read up _ </proc/uptime; up="${up%.*}${up#*.}"
    t=$((base * 100 + up - up0))
    echo "seq $n ${t%??}.${t#${t%??}}" >>"$f"
    usleep "$writer_usleep"
  done
}
if [ "$writer" = 1 ]; then
  for d in $data; do
    if grep -q " /data/$d " /proc/mounts; then write_records "/data/$d" & log "writer on /data/$d (pid $!)"; fi
  done
fi

# /dev/virtio-ports/NAME links (there is no udev)
mkdir -p /dev/virtio-ports
link_ports() {
  for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] || continue
    name="$(cat "$p/name")"
    [ -n "$name" ] && ln -sfn "../${p##*/}" "/dev/virtio-ports/$name"
  done
  test -e /dev/virtio-ports/org.qemu.guest_agent.0
}
i=$((wait_s * 20))
until link_ports; do
  i=$((i - 1)); [ "$i" -gt 0 ] || break
  usleep 50000
done
if [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ]; then
  (
    # Tests stop the agent for good (a guest whose agent is not running) by
    # creating /run/no-agent and killing it.
    while [ ! -e /run/no-agent ]; do
      qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0
      log "qemu-ga exited ($?), restarting"; sleep 1
    done
  ) &
  log "qemu-ga started"
else
  log "no org.qemu.guest_agent.0 port: qemu-ga not started"
fi

while true; do sleep 3600; done
INIT
chmod 0755 "$R/init"

# sanity: the agent runs with only what is in the root
if [ "$(id -u)" -eq 0 ]; then
  env -i "$(command -v chroot)" "$R" /usr/sbin/qemu-ga -V >/dev/null || die "qemu-ga does not run inside the assembled root"
  env -i "$(command -v chroot)" "$R" /bin/sh -n /init || die "/init has a syntax error"
fi

# ---- pack -----------------------------------------------------------------------
NEW="$CACHE/builds/.$KEY.new"
rm -rf "$NEW"; mkdir -p "$NEW"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | "$X/pkgs/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -6 >"$NEW/initramfs.img"
install -m 0644 "$X/kernel/boot/vmlinuz-$KREL" "$NEW/vmlinuz"
{
  printf '%s\n' "$MANIFEST"
  echo "kernel-release $KREL"
  echo "modules ${ORDER[*]}"
  echo "libraries:"; printf '%s' "$LIBS_USED"
} >"$NEW/manifest.txt"
rm -rf "$OUT"; mv "$NEW" "$OUT"
ln -sfn "builds/$KEY" "$CACHE/current.new" && mv -T "$CACHE/current.new" "$CACHE/current"
remember

# prune: keep the two newest builds, and only the .debs the current build used
ls -1dt "$CACHE/builds/"*/ 2>/dev/null | tail -n +3 | while read -r old; do rm -rf "$old"; done
for f in "$CACHE/debs/"*.deb; do
  [ -e "$f" ] || continue
  case " ${USED_DEBS[*]} " in *" $f "*) ;; *) rm -f "$f" ;; esac
done

log "built $KEY in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s:" \
  "vmlinuz $(du -h "$OUT/vmlinuz" | cut -f1), initramfs $(du -h "$OUT/initramfs.img" | cut -f1)" \
  "($KPKG $KVER, busybox $BBVER, qemu-ga $GAVER, modules: ${ORDER[*]})"
emit
