#!/usr/bin/env bash
# Checks the packages the way a fleet meets them. Run as root (CI does); needs
# debootstrap and rpm (Debian packages; .ci/run installs them).
#
#   packaging/test.sh [--no-build]
#
# 1. Builds revision 1 and 2 of both packages (packaging/build.sh).
# 2. Makes a Debian root with debootstrap (minbase + systemd, procps) and, inside it:
#    dpkg -i both .debs: users, 0700 state directories, conffiles, units (enabled),
#    sysusers files, man pages, the empty drop-in folders, changelogs; `validate` passes
#    on the shipped configs;
#    systemd-analyze verify and security --offline on the installed units.
# 3. Runs the collector as its unit's user (no capability) and the agent as its unit's
#    user with the unit's groups and only CAP_DAC_READ_SEARCH, on a root:root 0600 log
#    (as RHEL's /var/log/secure); the lines are searched in the collector. The same user
#    without the capability cannot read the file (so the check can fail).
# 4. With the collector down, the agent buffers lines; upgrade to revision 2 keeps the
#    modified conffiles and the buffer, and after the upgrade every line is stored once.
# 5. Purge removes the state and /etc/picket.
# 6. The .rpm files: rpm -qlp, --configfiles, --scripts show the same layout.
#
# PICKET_TEST_ROOTFS_CACHE=/path/root.tar reuses one debootstrap between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_flag=()
[ "${1:-}" = "--no-build" ] && build_flag=(--no-build)

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "==> $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, chroot, setpriv)"
for tool in debootstrap rpm; do
  command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install $tool"
done

target="${CARGO_TARGET_DIR:-$root/target}"
work=$(mktemp -d "${TMPDIR:-/tmp}/picket-packaging.XXXXXX")
chroot_dir="$work/root"
agent_pid=""
collector_pid=""
cleanup() {
  set +e
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null
  wait 2>/dev/null
  for m in proc dev/pts dev; do
    mountpoint -q "$chroot_dir/$m" && umount -l "$chroot_dir/$m"
  done
  rm -rf "$work"
}
trap cleanup EXIT

step "building revision 1 and 2"
packaging/build.sh "${build_flag[@]}" --revision 1
mkdir -p "$work/r1" "$work/r2"
mv "$target"/packages/*_0.1.0-1_*.deb "$target"/packages/*-0.1.0-1.*.rpm "$work/r1/"
packaging/build.sh --no-build --revision 2 >/dev/null
mv "$target"/packages/*_0.1.0-2_*.deb "$target"/packages/*-0.1.0-2.*.rpm "$work/r2/"

step "debootstrap (minbase + systemd, procps) into $chroot_dir"
# The machine's own Debian mirror, as apt is set up here.
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || fail "no Debian mirror in the apt sources"
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
# PICKET_TEST_ROOTFS_CACHE=file.tar keeps a fresh root between runs (for development).
cache="${PICKET_TEST_ROOTFS_CACHE:-}"
if [ -n "$cache" ] && [ -f "$cache" ]; then
  mkdir -p "$chroot_dir" && tar -C "$chroot_dir" -xf "$cache"
else
  debootstrap --variant=minbase --include=systemd,procps "$suite" "$chroot_dir" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  [ -z "$cache" ] || tar -C "$chroot_dir" -cf "$cache" .
fi
mount -t proc proc "$chroot_dir/proc"
mount --bind /dev "$chroot_dir/dev"
in_root() { chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

step "dpkg -i revision 1"
cp "$work"/r1/*.deb "$work"/r2/*.deb "$chroot_dir/tmp/"
in_root dpkg -i /tmp/picket-agent_0.1.0-1_amd64.deb /tmp/picket-collector_0.1.0-1_amd64.deb </dev/null

for name in picket-agent picket-collector; do
  in_root getent passwd "$name" >/dev/null || fail "no user $name"
  [ "$(in_root stat -c '%a %U' "/var/lib/$name")" = "700 $name" ] ||
    fail "/var/lib/$name is $(in_root stat -c '%a %U' "/var/lib/$name")"
  unit=$(in_root sh -c "ls /lib/systemd/system/$name.service /usr/lib/systemd/system/$name.service 2>/dev/null | head -1")
  [ -n "$unit" ] || fail "$name.service not installed"
  [ -L "$chroot_dir/etc/systemd/system/multi-user.target.wants/$name.service" ] || fail "$name.service not enabled"
  [ -f "$chroot_dir/usr/lib/sysusers.d/$name.conf" ] || fail "no sysusers file for $name"
  [ -f "$chroot_dir/usr/share/man/man1/$name.1.gz" ] || fail "no man page for $name"
  [ -f "$chroot_dir/usr/share/doc/$name/copyright" ] || fail "no copyright file for $name"
  [ -d "$chroot_dir/etc/picket/${name#picket-}.d" ] || fail "no /etc/picket/${name#picket-}.d/ drop-in folder"
  zcat "$chroot_dir/usr/share/doc/$name/changelog.Debian.gz" 2>/dev/null | head -1 | grep >/dev/null '^picket (0\.1\.0-1)' ||
    fail "no changelog.Debian.gz for $name"
  [ -x "$chroot_dir/usr/bin/$name" ] || fail "no /usr/bin/$name"
  config="/etc/picket/${name#picket-}.toml"
  in_root dpkg-query --showformat='${Conffiles}\n' --show "$name" | grep >/dev/null " $config " ||
    fail "$config is not a conffile of $name"
  in_root "$name" --config "$config" validate || fail "$name validate on the shipped config"
  step "systemd-analyze on $unit"
  in_root systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify $unit"
  in_root systemd-analyze security --offline=true "$unit" >"$work/$name.security" 2>&1 || true
  tail -1 "$work/$name.security"
done
in_root dpkg-query --showformat='${Conffiles}\n' --show picket-collector | grep >/dev/null " /etc/picket/rules/ssh-bruteforce.toml " ||
  fail "the rules are not conffiles"
in_root getent group systemd-journal >/dev/null || fail "no systemd-journal group in the root"

step "a bad config exits 78 naming the key and the file"
mkdir -p "$chroot_dir/etc/picket/agent.d"
echo '[agent]
heartbeat_secs = "often"' >"$chroot_dir/etc/picket/agent.d/90-typo.toml"
set +e
message=$(in_root picket-agent validate 2>&1)
status=$?
set -e
[ "$status" = 78 ] || fail "validate exited $status on a bad drop-in: $message"
echo "$message" | grep >/dev/null "90-typo.toml" || fail "the error does not name the file: $message"
rm "$chroot_dir/etc/picket/agent.d/90-typo.toml"

# The unit's identities: the agent with its groups and only CAP_DAC_READ_SEARCH (as
# AmbientCapabilities= and CapabilityBoundingSet= give it), the collector with nothing.
agent_identity=(setpriv --reuid=picket-agent --regid=picket-agent --groups=adm,systemd-journal
  --inh-caps=-all,+dac_read_search --ambient-caps=-all,+dac_read_search
  --bounding-set=-all,+dac_read_search --no-new-privs)
agent_without_caps=(setpriv --reuid=picket-agent --regid=picket-agent --groups=adm,systemd-journal
  --inh-caps=-all --bounding-set=-all --no-new-privs)
collector_identity=(setpriv --reuid=picket-collector --regid=picket-collector --clear-groups
  --inh-caps=-all --bounding-set=-all --no-new-privs)

port=$((20000 + RANDOM % 20000))
# Modified conffiles: the collector listens on the test's port, the agent.toml carries an
# operator's line; the agent's test settings are a drop-in, as configuration management
# would write them.
sed -i "s|^listen = \"127.0.0.1:8080\"|listen = \"127.0.0.1:$port\"|" "$chroot_dir/etc/picket/collector.toml"
grep >/dev/null "127.0.0.1:$port" "$chroot_dir/etc/picket/collector.toml" || fail "cannot set the collector's port"
echo "# changed by the operator" >>"$chroot_dir/etc/picket/agent.toml"
cat >"$chroot_dir/etc/picket/agent.d/50-test.toml" <<TOML
[agent]
hostname = "pkgtest.example"
heartbeat_secs = 0

[agent.inputs.file]
paths = ["/var/log/secure"]
start_at = "beginning"

[agent.inputs.journald]
mode = "off"

[agent.shippers.http]
url = "http://127.0.0.1:$port/events"
TOML
lines() {
  for n in $(seq "$1" "$2"); do
    echo "Nov 24 10:00:00 rhel9 sshd[4242]: Failed password for root from 192.0.2.7 port 22 ssh2 pkgtest-$n"
  done >>"$chroot_dir/var/log/secure"
}
: >"$chroot_dir/var/log/secure"
chmod 0600 "$chroot_dir/var/log/secure"
chown root:root "$chroot_dir/var/log/secure"
lines 1 50

step "the agent's user cannot read a 0600 root file without CAP_DAC_READ_SEARCH"
if in_root "${agent_without_caps[@]}" cat /var/log/secure >/dev/null 2>&1; then
  fail "read /var/log/secure without the capability: the check below proves nothing"
fi
in_root "${agent_identity[@]}" cat /var/log/secure >/dev/null || fail "cannot read /var/log/secure with CAP_DAC_READ_SEARCH"

# Each process is exec'd down to the program itself, so $! is its PID.
start_collector() {
  (exec chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin "${collector_identity[@]}" \
    picket-collector serve) >>"$work/collector.log" 2>&1 &
  collector_pid=$!
  for _ in $(seq 1 100); do
    grep >/dev/null "Collector listening" "$work/collector.log" && return 0
    sleep 0.1
  done
  cat "$work/collector.log"
  fail "the collector did not start"
}
# SIGTERM, and the process must have been running and exit 0.
stop() {
  kill "$1" || fail "process $1 was gone before SIGTERM"
  wait "$1" || fail "process $1 exited with $? after SIGTERM"
}
start_agent() {
  (exec chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin "${agent_identity[@]}" \
    picket-agent run) >>"$work/agent.log" 2>&1 &
  agent_pid=$!
}
stored() {
  in_root picket-collector search 'pkgtest' --json --size 1000 2>/dev/null | grep -c pkgtest- || true
}
wait_stored() {
  for _ in $(seq 1 150); do
    [ "$(stored)" -ge "$1" ] && break
    sleep 0.2
  done
  [ "$(stored)" = "$1" ] || { tail -n 20 "$work/agent.log" "$work/collector.log"; fail "stored $(stored) lines, want $1"; }
}

step "agent (unit user, CAP_DAC_READ_SEARCH only) → collector (unit user)"
start_collector
start_agent
wait_stored 50
[ "$(stat -c '%a' "$chroot_dir/var/lib/picket-agent/buffer")" = 700 ] || fail "buffer not 0700"

step "collector down: the agent buffers; SIGTERM; upgrade to revision 2"
stop "$collector_pid"; collector_pid=""
lines 51 120
for _ in $(seq 1 100); do
  grep >/dev/null "Delivery failed" "$work/agent.log" && break
  sleep 0.1
done
stop "$agent_pid"; agent_pid=""
buffer_before=$(cd "$chroot_dir/var/lib/picket-agent" && find . -type f -exec sha256sum {} + | sort)
[ "$(du -sb "$chroot_dir/var/lib/picket-agent/buffer" | cut -f1)" -gt 4096 ] || fail "nothing buffered"
in_root dpkg -i /tmp/picket-agent_0.1.0-2_amd64.deb /tmp/picket-collector_0.1.0-2_amd64.deb </dev/null
[ "$(in_root dpkg-query --showformat='${Version}' --show picket-agent)" = 0.1.0-2 ] || fail "not upgraded"
grep >/dev/null "changed by the operator" "$chroot_dir/etc/picket/agent.toml" || fail "upgrade replaced agent.toml"
grep >/dev/null "127.0.0.1:$port" "$chroot_dir/etc/picket/collector.toml" || fail "upgrade replaced collector.toml"
[ -f "$chroot_dir/etc/picket/agent.d/50-test.toml" ] || fail "upgrade removed the drop-in"
buffer_after=$(cd "$chroot_dir/var/lib/picket-agent" && find . -type f -exec sha256sum {} + | sort)
[ "$buffer_before" = "$buffer_after" ] || fail "upgrade changed the agent's state"
[ "$(in_root stat -c '%a %U' /var/lib/picket-agent)" = "700 picket-agent" ] || fail "state dir changed"

step "after the upgrade, the buffered lines arrive once"
start_collector
start_agent
wait_stored 120
grep >/dev/null "Disk buffer holds undelivered events" "$work/agent.log" ||
  fail "the upgraded agent did not ship from the buffer it had"
stop "$agent_pid"; agent_pid=""

step "a syslog listener on port 514: refused with the unit's capabilities, served with the README's drop-in"
cat >"$chroot_dir/etc/picket/agent.d/60-syslog.toml" <<TOML
[agent.inputs.syslog]
listen = ["tcp://127.0.0.1:514"]
sender_hostname = "address"
TOML
set +e
(exec chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin "${agent_identity[@]}" \
  picket-agent run) >"$work/agent-514.log" 2>&1
status=$?
set -e
[ "$status" = 78 ] || { cat "$work/agent-514.log"; fail "the agent exited $status (want 78, EX_CONFIG) on 514 without CAP_NET_BIND_SERVICE"; }
grep >/dev/null "CAP_NET_BIND_SERVICE" "$work/agent-514.log" || { cat "$work/agent-514.log"; fail "the error does not name the capability"; }
# AmbientCapabilities= and CapabilityBoundingSet= as the README's drop-in sets them.
agent_identity=(setpriv --reuid=picket-agent --regid=picket-agent --groups=adm,systemd-journal
  --inh-caps=-all,+dac_read_search,+net_bind_service --ambient-caps=-all,+dac_read_search,+net_bind_service
  --bounding-set=-all,+dac_read_search,+net_bind_service --no-new-privs)
start_agent
for _ in $(seq 1 100); do
  grep >/dev/null "Syslog listener on" "$work/agent.log" && break
  sleep 0.1
done
logger --server 127.0.0.1 --port 514 --tcp --rfc3164 -t sshd -i -- \
  "Failed password for root from 192.0.2.7 port 22 ssh2 pkgtest-121" || fail "logger could not send"
wait_stored 121
stop "$agent_pid"; agent_pid=""
rm "$chroot_dir/etc/picket/agent.d/60-syslog.toml"
stop "$collector_pid"; collector_pid=""

step "purge removes the state"
in_root dpkg --purge picket-agent picket-collector </dev/null
for name in picket-agent picket-collector; do
  [ ! -e "$chroot_dir/var/lib/$name" ] || fail "/var/lib/$name survived purge"
done
[ ! -e "$chroot_dir/etc/picket/agent.toml" ] || fail "agent.toml survived purge"
# The operator's drop-in is the operator's: dpkg leaves what it did not ship.
[ -f "$chroot_dir/etc/picket/agent.d/50-test.toml" ] || fail "purge removed the operator's drop-in"

step "rpm layout"
for name in picket-agent picket-collector; do
  rpm_file=$(ls "$work"/r1/"$name"-0.1.0-1.*.rpm)
  files=$(rpm -qlp "$rpm_file" 2>/dev/null)
  for want in "/usr/bin/$name" "/etc/picket/${name#picket-}.toml" "/usr/lib/systemd/system/$name.service" \
    "/usr/lib/sysusers.d/$name.conf" "/usr/share/man/man1/$name.1.gz" "/usr/share/licenses/$name/LICENSE" \
    "/etc/picket/${name#picket-}.d/README" "/usr/share/doc/$name/changelog"; do
    echo "$files" | grep -x >/dev/null "$want" || fail "$rpm_file lacks $want"
  done
  rpm -qp --configfiles "$rpm_file" 2>/dev/null | grep -x >/dev/null "/etc/picket/${name#picket-}.toml" || fail "config not marked in $rpm_file"
  rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm_file" 2>/dev/null |
    grep >/dev/null "^/etc/picket/${name#picket-}.toml cn" || fail "config not noreplace in $rpm_file"
  scripts=$(rpm -qp --scripts "$rpm_file" 2>/dev/null)
  for want in "systemd-sysusers" "install -d -m 0700" "preuninstall" "postuninstall"; do
    echo "$scripts" | grep >/dev/null "$want" || fail "$rpm_file scripts lack $want"
  done
done
rpm -qlp "$work"/r1/picket-collector-0.1.0-1.*.rpm 2>/dev/null | grep -x >/dev/null /etc/picket/rules/ssh-bruteforce.toml ||
  fail "the rpm lacks the rules"

step "sizes"
for f in "$work"/r1/*; do
  printf '%-48s %6.2f MiB\n' "$(basename "$f")" "$(awk -v b="$(stat -c %s "$f")" 'BEGIN {print b / 1048576}')"
done
for name in picket-agent picket-collector; do
  grep -h "Overall exposure" "$work/$name.security" | sed "s/^/$name: /" || true
done
echo "packaging test passed"
