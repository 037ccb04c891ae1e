#!/usr/bin/env bash
# Builds the .deb and .rpm packages of picket-agent and picket-collector into
# target/packages/.
#
#   packaging/build.sh [--no-build] [--revision N]
#
#   --no-build     package the release binaries already in target/release
#   --revision N   package revision (default 1): 0.1.0-N (deb), 0.1.0-N (rpm release)
#
# Needs: cargo-deb and cargo-generate-rpm (crates.io; the pinned versions below are
# installed into target/tools when missing), help2man (Debian package) for the man pages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

build=1
revision=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --revision) revision="$2"; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

target="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$root/target/tools/bin:$PATH"
# Pinned: the packages' metadata (assets, conffiles, scripts) is read by these tools, and
# a new release must not change the packages under CI unnoticed. Bump them together
# with packaging/test.sh passing.
for pinned in deb@3.8.0 generate-rpm@0.21.1; do
  tool=${pinned%@*} version=${pinned#*@}
  if ! cargo "$tool" --version 2>/dev/null | grep -x >/dev/null "cargo-$tool $version"; then
    echo "==> cargo install cargo-$tool $version (into target/tools)"
    cargo install --quiet --locked --root "$root/target/tools" "cargo-$tool" --version "$version"
  fi
done
command -v help2man >/dev/null || { echo "help2man is missing: apt-get install help2man" >&2; exit 1; }

if [ "$build" = 1 ]; then
  echo "==> cargo build --release"
  cargo build --release -p picket-agent -p picket-collector
fi

# Generated assets, referenced by [package.metadata.deb] / [package.metadata.generate-rpm]
# in agent/ and collector/Cargo.toml (not committed).
stage="$root/packaging/staged"
rm -rf "$stage"
mkdir -p "$stage"

# The shipped configs are config.example.toml cut in two: its opening comment, then the
# [agent] tables (agent.toml) or the [collector] tables (collector.toml). Every key stays
# documented with its default.
header_end=$(grep -n '^$' config.example.toml | head -1 | cut -d: -f1)
collector_start=$(grep -n '^\[collector' config.example.toml | head -1 | cut -d: -f1)
{
  echo "# /etc/picket/agent.toml: the Picket agent's configuration. Files in"
  echo "# /etc/picket/agent.d/*.toml are merged over it in name order (tables key by key,"
  echo "# other values replaced): configuration management can own one drop-in each."
  echo "# Check with \`picket-agent validate\`; apply with \`systemctl reload picket-agent\`."
  echo "#"
  sed -n "1,$((collector_start - 1))p" config.example.toml
} > "$stage/agent.toml"
{
  echo "# /etc/picket/collector.toml: the Picket collector's configuration. Files in"
  echo "# /etc/picket/collector.d/*.toml are merged over it in name order (tables key by key,"
  echo "# other values replaced). Check with \`picket-collector validate\`; alert rules live"
  echo "# in /etc/picket/rules."
  echo "#"
  sed -n "1,${header_end}p" config.example.toml
  sed -n "${collector_start},\$p" config.example.toml
} > "$stage/collector.toml"

# Man pages from --help, with every subcommand's help as its own section.
for bin in picket-agent picket-collector; do
  exe="$target/release/$bin"
  include="$stage/$bin.h2m"
  {
    echo "[SUBCOMMANDS]"
    for sub in $("$exe" --help | awk '/^Commands:/{on=1; next} /^$/{on=0} on && $1 != "help" {print $1}'); do
      echo ".SS $bin $sub"
      echo ".nf"
      "$exe" "$sub" --help | sed 's/\\/\\\\/g; s/^\./\\\&./'
      echo ".fi"
    done
    echo "[FILES]"
    echo "/etc/picket/${bin#picket-}.toml, /var/lib/$bin (state, 0700), /usr/share/doc/$bin/"
  } > "$include"
  help2man --no-info --no-discard-stderr --include "$include" \
    --name "$(grep -m1 '^description' "${bin#picket-}/Cargo.toml" | cut -d'"' -f2 | sed 's/^Picket [a-z]*: //')" \
    "$exe" | gzip -9n > "$stage/$bin.1.gz"
done

out="$target/packages"
mkdir -p "$out"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for bin in picket-agent picket-collector; do
  echo "==> $bin $version-$revision"
  cargo deb -p "$bin" --no-build --deb-revision "$revision" -o "$out/" >/dev/null
  cargo generate-rpm -p "${bin#picket-}" -o "$out/" -s "release = \"$revision\""
done

echo "==> $out"
for bin in picket-agent picket-collector; do
  stat -c %s "$target/release/$bin" |
    awk -v bin="$bin" '{printf "%-48s %6.2f MiB (binary, stripped)\n", bin, $1 / 1048576}'
done
ls -l "$out" | awk 'NR > 1 {printf "%-48s %6.2f MiB\n", $9, $5 / 1048576}'
