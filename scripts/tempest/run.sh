#!/usr/bin/env bash
# Tempest's Cinder API tests against a running Bulwark
# =====================================================
#
# Bulwark implements Keystone v3 (read-only, users from its config) and Cinder v3,
# but no Nova, Glance, Swift or Neutron. This runs tempest.api.volume with
# pre-provisioned credentials, minus the tests that need the missing services.
#
# 1. Generate accounts (N = parallel workers) and merge the identity block into
#    Bulwark's config, then start Bulwark:
#        node scripts/tempest/accounts.mjs --workers 4 --out-dir /tmp/bw-tempest
#        # -> /tmp/bw-tempest/identity.json  (the config's "identity" block)
#        # -> /tmp/bw-tempest/accounts.yaml  (tempest's test_accounts_file)
# 2. Run:
#        BULWARK_URL=http://127.0.0.1:8776 \
#        TEMPEST_ACCOUNTS=/tmp/bw-tempest/accounts.yaml \
#        scripts/tempest/run.sh
#    The last line is "passed N, failed N, skipped N"; failed ids are listed
#    above it. Exit status: 0 all good, 1 a test failed, 2 tempest could not run.
#    The workspace (etc/tempest.conf, logs/tempest.log, .stestr) is kept and its
#    path printed, so `cd <ws> && stestr last` shows the run again.
#
#    scripts/tempest/run.sh --list   lists the selected tests (no Bulwark needed),
#    prints included/excluded counts per module and rewrites
#    scripts/tempest/included-tests.txt.
#
# Environment (defaults in brackets):
#   BULWARK_URL             Bulwark API base URL (required to run)
#   BULWARK_IDENTITY_URL    Keystone v3 URL [$BULWARK_URL/identity/v3]
#   TEMPEST_ACCOUNTS        accounts.yaml from accounts.mjs (required to run)
#   TEMPEST_CONCURRENCY     parallel workers, <= --workers of accounts.mjs [4]
#   TEMPEST_BACKUP          volume-feature-enabled.backup [false]
#   TEMPEST_VENDOR_NAME     vendor_name Bulwark's pools report [Open Source]
#   TEMPEST_STORAGE_PROTOCOL storage_protocol they report [iSCSI]
#   TEMPEST_REGEX           selection [^tempest\.api\.volume\.]
#   TEMPEST_EXTRA_EXCLUDE   one more exclusion regex, e.g. for known failures
#   TEMPEST_WORKSPACE       workspace dir [new temp dir]
#
# Uses Debian's tempest (/usr/bin/tempest, /usr/bin/stestr, /usr/bin/python3),
# never a pyenv/virtualenv python earlier in PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPEST=/usr/bin/tempest
STESTR=/usr/bin/stestr
PY=/usr/bin/python3

MODE=run
case "${1:-}" in
  --list) MODE=list ;;
  '') ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--list]" >&2; exit 2 ;;
esac

for bin in "$TEMPEST" "$STESTR" "$PY"; do
  [[ -x "$bin" ]] || { echo "missing $bin (apt install tempest python3-subunit)" >&2; exit 2; }
done

REGEX="${TEMPEST_REGEX:-^tempest\.api\.volume\.}"
V='tempest\.api\.volume\.'

# Tests needing a service Bulwark does not have. Most are also guarded by
# @utils.services('compute'|'image') and would merely skip; excluding them
# explicitly keeps the skip count meaningful and protects against tests that
# ignore the service flags.
EXCLUDES=(
  # Nova: boot a server and attach the volume to it.
  "${V}admin\.test_encrypted_volumes_extend\."
  "${V}admin\.test_volumes_actions\.VolumesActionsTest\.test_force_detach_volume\["
  "${V}test_volumes_actions\.VolumesActionsTest\.test_(attach_detach_volume_to_instance|get_volume_attachment)\["
  "${V}test_volumes_backup\.VolumesBackupsTest\.test_backup_create_attached_volume\["
  "${V}test_volumes_extend\.VolumesExtendAttachedTest\."
  "${V}test_volumes_negative\.VolumesNegativeTest\.test_attach_volumes_with_nonexistent_volume_id\["
  "${V}test_volumes_snapshots\.VolumesSnapshotTestJSON\.test_snapshot_create_(delete_with_volume_in_use|offline_delete_online)\["
  # Glance: volumes from images, upload to image, image metadata.
  "${V}test_image_metadata\."
  "${V}test_volumes_actions\.VolumesActionsTest\.test_volume_upload\["
  "${V}test_volumes_backup\.VolumesBackupsTest\.test_bootable_volume_backup_and_restore\["
  "${V}test_volumes_clone\.VolumesCloneTest\.test_create_from_bootable_volume\["
  "${V}test_volumes_get\.VolumesGetTest\.test_volume_create_get_update_delete_from_image\["
  "${V}test_volumes_negative\.VolumesNegativeTest\.test_create_volume_from_(image_with_decreasing_size|deactivated_image)\["
  # test_volume_extend has no service guard at all: it creates its volume from
  # CONF.compute.image_ref through the Glance client. (The other extend tests,
  # e.g. ..._when_volume_has_snapshot, only need Cinder and stay in.)
  "${V}test_volumes_extend\.VolumesExtendTest\.test_volume_extend\["
  # Keystone admin API: creates a project; Bulwark's identity is read-only.
  "${V}admin\.test_volume_quota_classes\.VolumeQuotaClassesTest\.test_update_default_quota\["
)
[[ -n "${TEMPEST_EXTRA_EXCLUDE:-}" ]] && EXCLUDES+=("$TEMPEST_EXTRA_EXCLUDE")
EXCLUDE_REGEX="$(IFS='|'; echo "${EXCLUDES[*]}")"

if [[ -n "${TEMPEST_WORKSPACE:-}" ]]; then
  WS="$TEMPEST_WORKSPACE"; mkdir -p "$WS"
else
  WS="$(mktemp -d "${TMPDIR:-/tmp}/bulwark-tempest.XXXXXX")"
  [[ "$MODE" == list ]] && trap 'rm -rf "$WS"' EXIT
fi
mkdir -p "$WS/etc" "$WS/logs" "$WS/tempest_lock"

BULWARK_URL="${BULWARK_URL:-}"
BULWARK_URL="${BULWARK_URL%/}"
IDENTITY_URL="${BULWARK_IDENTITY_URL:-${BULWARK_URL:-http://127.0.0.1:8776}/identity/v3}"

if [[ "$MODE" == run ]]; then
  [[ -n "$BULWARK_URL" ]] || { echo "BULWARK_URL is required" >&2; exit 2; }
  [[ -r "${TEMPEST_ACCOUNTS:-}" ]] || { echo "TEMPEST_ACCOUNTS must name accounts.yaml from accounts.mjs" >&2; exit 2; }
  install -m 600 "$TEMPEST_ACCOUNTS" "$WS/etc/accounts.yaml"
  # Fail fast (exit 2) if Keystone discovery does not answer, rather than
  # letting every test class error out on authentication.
  if ! "$PY" - "$IDENTITY_URL" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        assert json.load(r)['version']['id'].startswith('v3')
except Exception as e:
    sys.exit('no Keystone v3 at %s: %s' % (sys.argv[1], e))
EOF
  then
    [[ -z "${TEMPEST_WORKSPACE:-}" ]] && rm -rf "$WS"
    exit 2
  fi
else
  : > "$WS/etc/accounts.yaml"
fi

cat > "$WS/etc/tempest.conf" <<EOF
# Generated by scripts/tempest/run.sh for Bulwark.
[DEFAULT]
log_dir = $WS/logs
log_file = tempest.log
use_stderr = false

[oslo_concurrency]
# Where the pre-provisioned accounts are locked between workers.
lock_path = $WS/tempest_lock

[auth]
use_dynamic_credentials = false
test_accounts_file = $WS/etc/accounts.yaml
default_credentials_domain_name = Default
create_isolated_networks = false

[identity]
uri_v3 = $IDENTITY_URL
auth_version = v3
region = RegionOne
v3_endpoint_type = public
admin_role = admin

[service_available]
cinder = true
nova = false
glance = false
swift = false
neutron = false

[volume]
catalog_type = volumev3
endpoint_type = publicURL
region = RegionOne
min_microversion = 3.0
max_microversion = 3.64
build_interval = 1
build_timeout = 60
volume_size = 1
vendor_name = ${TEMPEST_VENDOR_NAME:-Open Source}
storage_protocol = ${TEMPEST_STORAGE_PROTOCOL:-iSCSI}

[volume-feature-enabled]
backup = ${TEMPEST_BACKUP:-false}
snapshot = true
clone = true
manage_snapshot = false
manage_volume = false
extend_attached_volume = false
extend_attached_encrypted_volume = false
multi_backend = false
# Removed from tempest 33 (ignored there); kept for older tempest releases.
api_v3 = true
consistency_group = false

[validation]
run_validation = false
EOF

cd "$WS"
# stestr (even for --list-tests) wants a repository in the working directory.
[[ -d .stestr ]] || "$STESTR" init >/dev/null
list_tests() {
  "$TEMPEST" run --config-file "$WS/etc/tempest.conf" --list-tests --regex "$REGEX" "$@" 2>/dev/null | grep '^tempest\.' | sort
}

if [[ "$MODE" == list ]]; then
  list_tests > "$WS/all.txt"
  list_tests --exclude-regex "$EXCLUDE_REGEX" > "$WS/included.txt"
  # Per-module counts: the module is the id up to the class (strip ".Class.test[...]").
  module_counts() { sed -E 's/\[.*//; s/\.[^.]+\.[^.]+$//' "$1" | sort | uniq -c | awk '{print $2, $1}'; }
  join -a1 -e0 -o '0,1.2,2.2' <(module_counts "$WS/all.txt") <(module_counts "$WS/included.txt") |
    awk 'BEGIN { printf "%-62s %8s %8s\n", "module", "included", "excluded" }
         { sub(/^tempest\.api\.volume\./, "", $1); printf "%-62s %8d %8d\n", $1, $3, $2 - $3; inc += $3; all += $2 }
         END { printf "%-62s %8d %8d\n", "TOTAL", inc, all - inc }'
  {
    echo "# tempest $("$TEMPEST" --version 2>/dev/null | awk '{print $NF}'): tests selected by scripts/tempest/run.sh"
    echo "# (regex $REGEX minus its exclusions). Regenerate with: scripts/tempest/run.sh --list"
    cat "$WS/included.txt"
  } > "$HERE/included-tests.txt"
  echo "wrote $HERE/included-tests.txt ($(wc -l < "$WS/included.txt") tests)"
  exit 0
fi

echo "tempest workspace: $WS" >&2
set +e
"$TEMPEST" run --config-file "$WS/etc/tempest.conf" --regex "$REGEX" --exclude-regex "$EXCLUDE_REGEX" \
  --concurrency "${TEMPEST_CONCURRENCY:-4}"
tempest_rc=$?
set -e
echo "tempest run exited $tempest_rc; workspace: $WS" >&2

# The verdict comes from the recorded subunit stream, not tempest's exit code:
# only failed tests make this script fail (1); no results at all is 2.
"$STESTR" last --subunit 2>/dev/null > "$WS/results.subunit" || true
exec "$PY" "$HERE/summarize.py" < "$WS/results.subunit"
