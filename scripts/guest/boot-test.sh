#!/usr/bin/env bash
# Manual smoke test of the test guest (scripts/guest/build-guest.sh):
#  - builds (or reuses) the guest;
#  - makes three disks: vda (raw, blank, not mounted: keeps the data disks at
#    vdb/vdc as the tests name them), vdb (raw, ext4), vdc (qcow2, ext4);
#  - boots QEMU/TCG with the agent on a virtio-serial port and a QMP socket;
#  - over the agent: resync (0xFF + guest-sync-delimited), guest-ping (time from
#    QEMU start to the first answer), fsfreeze freeze/status/thaw (timed), lets
#    the writers run, freezes again and quits QEMU over QMP while frozen;
#  - checks both data disks with e2fsck -fn and shows/validates records.log
#    (debugfs, no mount).
# Env: KEEP=1 keeps the work dir; BOOT_TEST_APPEND_EXTRA adds kernel options
# (e.g. quiet); RUN_SECONDS how long the writers run between thaw and the final
# freeze (default 2).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3

die() { echo "boot-test: error: $*" >&2; exit 1; }
for t in qemu-system-x86_64 qemu-img mke2fs e2fsck debugfs "$PY"; do
  command -v "$t" >/dev/null || die "missing $t (apt-get install -y qemu-system-x86 qemu-utils e2fsprogs python3)"
done

eval "$("$HERE/build-guest.sh")"
[ -f "$BULWARK_GUEST_KERNEL" ] && [ -f "$BULWARK_GUEST_INITRD" ] || die "guest build failed"

DIR="$(mktemp -d /tmp/bulwark-boot-test.XXXXXX)"
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -f "$DIR/console.log" ]; then
    echo "---- guest console (last 40 lines) ----" >&2; tail -n 40 "$DIR/console.log" >&2
  fi
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then echo "boot-test: work dir kept: $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

# ---- disks ----------------------------------------------------------------------
qemu-img create -q -f raw "$DIR/vda.raw" 16M
qemu-img create -q -f raw "$DIR/vdb.raw" 64M
mke2fs -q -F -t ext4 -L vdb "$DIR/vdb.raw"
qemu-img create -q -f raw "$DIR/vdc.tmp.raw" 64M
mke2fs -q -F -t ext4 -L vdc "$DIR/vdc.tmp.raw"
qemu-img convert -f raw -O qcow2 "$DIR/vdc.tmp.raw" "$DIR/vdc.qcow2"
rm -f "$DIR/vdc.tmp.raw"

APPEND="console=ttyS0 bulwark.data=vdb,vdc bulwark.writer=1${BOOT_TEST_APPEND_EXTRA:+ $BOOT_TEST_APPEND_EXTRA}"
QEMU=(
  qemu-system-x86_64 -accel tcg -cpu max -m 256 -smp 1 -nographic -nic none -no-reboot
  -kernel "$BULWARK_GUEST_KERNEL" -initrd "$BULWARK_GUEST_INITRD" -append "$APPEND"
  -blockdev "driver=file,node-name=f-vda,filename=$DIR/vda.raw"
  -blockdev "driver=raw,node-name=vda,file=f-vda"
  -device virtio-blk-pci,drive=vda
  -blockdev "driver=file,node-name=f-vdb,filename=$DIR/vdb.raw"
  -blockdev "driver=raw,node-name=vdb,file=f-vdb"
  -device virtio-blk-pci,drive=vdb
  -blockdev "driver=file,node-name=f-vdc,filename=$DIR/vdc.qcow2"
  -blockdev "driver=qcow2,node-name=vdc,file=f-vdc"
  -device virtio-blk-pci,drive=vdc
  -device virtio-serial-pci
  -chardev "socket,id=qga0,path=$DIR/qga.sock,server=on,wait=off"
  -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0
  -qmp "unix:$DIR/qmp.sock,server=on,wait=off"
)
echo "boot-test: append: $APPEND"

# ---- boot and talk to the agent ---------------------------------------------------
RUN_SECONDS="${RUN_SECONDS:-2}" "$PY" - "$DIR" "${QEMU[@]}" <<'PY'
import json, os, random, socket, subprocess, sys, time

work, argv = sys.argv[1], sys.argv[2:]
run_seconds = float(os.environ["RUN_SECONDS"])

def ms(dt): return f"{dt * 1000:.0f} ms"

class Channel:
    """Line-delimited JSON over a unix socket (agent or QMP)."""
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
    def send(self, obj, prefix=b""):
        self.s.sendall(prefix + json.dumps(obj).encode() + b"\n")
    def recv(self, timeout):
        """Next JSON object, or None on timeout. Drops 0xFF bytes and junk."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.replace(b"\xff", b"").strip()
                if not line:
                    continue
                try:
                    return json.loads(line)
                except ValueError:
                    continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise EOFError("socket closed")
            self.buf += chunk
    def call(self, cmd, args=None, timeout=30):
        msg = {"execute": cmd}
        if args: msg["arguments"] = args
        self.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            r = self.recv(max(0.0, deadline - time.monotonic()))
            if r is None: raise TimeoutError(cmd)
            if "event" in r: continue
            if "error" in r: raise RuntimeError(f"{cmd}: {r['error']}")
            return r["return"]

def wait_path(p, deadline):
    while not os.path.exists(p):
        if time.monotonic() > deadline: raise TimeoutError(p)
        time.sleep(0.005)

console = open(os.path.join(work, "console.log"), "wb")
t0 = time.monotonic()
qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
try:
    deadline = t0 + 120
    wait_path(os.path.join(work, "qga.sock"), deadline)
    ga = Channel(os.path.join(work, "qga.sock"))
    # Resync: 0xFF then guest-sync-delimited with a fresh id, repeated until the
    # agent (not yet running while the guest boots) answers with that id.
    attempts = 0
    while True:
        if qemu.poll() is not None: raise RuntimeError(f"qemu exited with {qemu.returncode}")
        if time.monotonic() > deadline: raise TimeoutError("agent never answered")
        attempts += 1
        sid = random.randrange(1, 2**31)
        ga.send({"execute": "guest-sync-delimited", "arguments": {"id": sid}}, prefix=b"\xff")
        got = False
        until = time.monotonic() + 0.25
        while time.monotonic() < until:
            r = ga.recv(until - time.monotonic())
            if r is not None and r.get("return") == sid:
                got = True; break
        if got: break
    ga.call("guest-ping")
    t_ping = time.monotonic() - t0
    print(f"boot-test: QEMU start -> first answered guest-ping: {t_ping:.2f} s ({attempts} sync attempts)")
    info = ga.call("guest-info")
    print(f"boot-test: agent version {info['version']}")

    print(f"boot-test: fsfreeze-status: {ga.call('guest-fsfreeze-status')}")
    time.sleep(0.5)  # let the writers write
    t = time.monotonic(); n = ga.call("guest-fsfreeze-freeze"); t_freeze = time.monotonic() - t
    status = ga.call("guest-fsfreeze-status")
    t = time.monotonic(); m = ga.call("guest-fsfreeze-thaw"); t_thaw = time.monotonic() - t
    print(f"boot-test: freeze: {n} filesystems in {ms(t_freeze)}; status while frozen: {status}; thaw: {m} in {ms(t_thaw)}")
    if n != 2 or status != "frozen" or m != 2:
        raise RuntimeError("unexpected freeze/thaw result")
    print(f"boot-test: fsfreeze-status: {ga.call('guest-fsfreeze-status')}")

    time.sleep(run_seconds)
    t = time.monotonic(); n = ga.call("guest-fsfreeze-freeze"); t_freeze2 = time.monotonic() - t
    print(f"boot-test: final freeze (with {run_seconds:g} s of writes pending): {n} filesystems in {ms(t_freeze2)}; quitting while frozen")

    qmp = Channel(os.path.join(work, "qmp.sock"))
    qmp.recv(10)  # greeting
    qmp.call("qmp_capabilities")
    try:
        qmp.call("quit", timeout=10)
    except EOFError:
        pass
    qemu.wait(timeout=20)
    print(f"boot-test: qemu exited ({qemu.returncode}) after {time.monotonic() - t0:.1f} s")
finally:
    if qemu.poll() is None:
        qemu.kill(); qemu.wait()
PY

# ---- check the disks offline -------------------------------------------------------
qemu-img convert -f qcow2 -O raw "$DIR/vdc.qcow2" "$DIR/vdc.check.raw"
rc=0
for img in "$DIR/vdb.raw" "$DIR/vdc.check.raw"; do
  name="$(basename "$img" | cut -d. -f1)"
  if out="$(e2fsck -fn "$img" 2>&1)"; then echo "boot-test: $name: e2fsck -fn clean ($(tail -n 1 <<<"$out" | sed 's/^[^:]*: //'))"
  else echo "$out"; echo "boot-test: $name: e2fsck -fn FAILED" >&2; rc=1; fi
  debugfs -R 'cat /records.log' "$img" 2>/dev/null >"$DIR/$name.records"
  if ! awk -v name="$name" '
      $1 != "seq" || NF != 3 || $2 != NR || $3 !~ /^[0-9]+\.[0-9][0-9]$/ { bad = NR ": " $0; exit 1 }
      END { if (bad != "") { print "boot-test: " name ": bad record at line " bad; exit 1 }
            if (NR == 0) { print "boot-test: " name ": no records"; exit 1 }
            printf "boot-test: %s: %d records, consecutive, all complete\n", name, NR }' "$DIR/$name.records"; then
    echo "boot-test: $name: bad or missing records" >&2; rc=1
  fi
  { head -n 2; echo "  …"; tail -n 2; } <"$DIR/$name.records" | sed 's/^/    /'
done
[ "$rc" -eq 0 ] || die "disk check failed"
echo "boot-test: OK"
