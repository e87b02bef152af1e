#!/usr/bin/env bash
# Installs the system pieces the project needs on Debian bookworm, idempotently:
# PostgreSQL 15 + TimescaleDB 2.x (built from Debian's trixie source package), mosquitto,
# GStreamer's RTSP server with Python bindings, and npm when missing.
# A second run only checks what is present and takes seconds (no apt-get update).
set -Eeuo pipefail

PG_MAJOR=15
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
# The suite whose *source* package of TimescaleDB builds against bookworm's PostgreSQL 15.
TIMESCALEDB_SOURCE_SUITE="${TIMESCALEDB_SOURCE_SUITE:-trixie}"
APT_PACKAGES=(
    "postgresql-${PG_MAJOR}"
    "postgresql-server-dev-${PG_MAJOR}"
    cmake
    xz-utils
    openssl
    mosquitto
    mosquitto-clients
    python3-gi
    gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-libav
    fonts-dejavu-core
    chromium
)
# Wait for another apt/dpkg run (e.g. a parallel setup) instead of failing at once.
APT_LOCK_OPTS=(-o DPkg::Lock::Timeout=600)

CURRENT_STEP="start"
say() { printf '[setup_system] %s\n' "$*"; }
fail() {
    printf '[setup_system] ERROR in step "%s": %s\n' "$CURRENT_STEP" "$*" >&2
    exit 1
}
on_error() {
    local status=$?
    printf '[setup_system] ERROR: step "%s" failed (exit %s). Read the output above; fix the cause (network to the Debian mirror, apt locks, disk space) and run this script again: it resumes where it stopped.\n' \
        "$CURRENT_STEP" "$status" >&2
    exit "$status"
}
trap on_error ERR

# --- privilege -----------------------------------------------------------------------------------
SUDO=()
ensure_privilege() {
    [[ ${EUID} -eq 0 || ${#SUDO[@]} -gt 0 ]] && return 0
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo --preserve-env=DEBIAN_FRONTEND)
        say "not root: using sudo for system changes"
    else
        fail "this step needs root and sudo is not installed. Run this script as root (e.g. 'su -c \"$0\"')."
    fi
}
as_root() {
    ensure_privilege
    "${SUDO[@]}" "$@"
}

# --- helpers -------------------------------------------------------------------------------------
is_installed() { [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii "* ]]; }

timescaledb_control() { echo "$("$PG_CONFIG" --sharedir)/extension/timescaledb.control"; }

# Prints the URI of the machine's own Debian mirror for the given suite, from one-line
# (sources.list) or deb822 (*.sources) entries, so the private source config uses the same host.
debian_mirror_uri() {
    local codename=$1 file uri
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $file ]] || continue
        uri=$(awk -v codename="$codename" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == codename) { print $i; exit }
            }' "$file")
        [[ -n $uri ]] && { echo "$uri"; return 0; }
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -r $file ]] || continue
        uri=$(awk -v codename="$codename" '
            function flush() {
                if (uris != "" && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " codename " ")) {
                    split(uris, parts, " "); print parts[1]; done = 1
                }
                uris = ""; suites = ""; types = ""
            }
            done { exit }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
            /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
            /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
            END { if (!done) flush() }' "$file")
        [[ -n $uri ]] && { echo "${uri%% *}"; return 0; }
    done
    return 1
}

# --- step 1: apt packages --------------------------------------------------------------------------
install_apt_packages() {
    CURRENT_STEP="apt packages"
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    # A compiler and make are needed to build TimescaleDB; any installed toolchain will do.
    if ! command -v gcc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
        missing+=(build-essential)
    fi
    # npm fetches a model package elsewhere in the setup; a nodesource install also counts.
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "apt packages: all present"
        return 0
    fi
    say "apt packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_LOCK_OPTS[@]}" update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_LOCK_OPTS[@]}" install -y -qq \
        --no-install-recommends "${missing[@]}"
}

# --- step 2: TimescaleDB ---------------------------------------------------------------------------
install_timescaledb() {
    CURRENT_STEP="timescaledb"
    [[ -x $PG_CONFIG ]] || fail "$PG_CONFIG not found: postgresql-server-dev-${PG_MAJOR} did not install."
    if [[ -f "$(timescaledb_control)" ]]; then
        say "timescaledb: present ($(timescaledb_control))"
        return 0
    fi
    # An installable binary package is preferred when some configured repository offers one.
    local binary_pkg="timescaledb-2-postgresql-${PG_MAJOR}"
    if apt-cache show "$binary_pkg" >/dev/null 2>&1; then
        say "timescaledb: installing binary package $binary_pkg"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_LOCK_OPTS[@]}" install -y -qq "$binary_pkg"
        return 0
    fi
    build_timescaledb_from_debian_source
}

build_timescaledb_from_debian_source() {
    CURRENT_STEP="timescaledb: fetch Debian source (${TIMESCALEDB_SOURCE_SUITE})"
    local codename mirror work apt_opts
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || fail "cannot read VERSION_CODENAME from /etc/os-release (is this Debian?)."
    mirror=$(debian_mirror_uri "$codename") ||
        fail "no 'deb' entry for suite '$codename' in /etc/apt/sources.list or /etc/apt/sources.list.d/: cannot tell which Debian mirror to use."
    say "timescaledb: building from the ${TIMESCALEDB_SOURCE_SUITE} source package on $mirror"

    work=$(mktemp -d /tmp/ioc-timescaledb-build.XXXXXX)
    # shellcheck disable=SC2064  # expand $work now: it is local to this function.
    trap "rm -rf '$work'" EXIT
    mkdir -p "$work/apt/lists/partial" "$work/apt/sources.list.d" "$work/apt/cache/archives/partial" "$work/src"
    printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
        "$mirror" "$TIMESCALEDB_SOURCE_SUITE" >"$work/apt/sources.list"
    # Private lists, source list and cache: the system's apt state is left untouched.
    apt_opts=(
        -o "Dir::State::Lists=$work/apt/lists"
        -o "Dir::Etc::SourceList=$work/apt/sources.list"
        -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
        -o "Dir::Cache=$work/apt/cache"
        -o "APT::Sandbox::User=$(id -un)"
    )
    apt-get "${apt_opts[@]}" update -qq
    (cd "$work" && apt-get "${apt_opts[@]}" source --download-only timescaledb)
    local orig
    orig=$(find "$work" -maxdepth 1 -name 'timescaledb_*.orig.tar.*' | head -n 1)
    [[ -n $orig ]] || fail "the timescaledb source package has no orig tarball in $work."

    CURRENT_STEP="timescaledb: build $(basename "$orig")"
    tar -xf "$orig" -C "$work/src" --strip-components=1
    # The +dfsg source has no tsl/ folder, so only the Apache-licensed edition can be built.
    (cd "$work/src" && ./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
        -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$PG_CONFIG" >"$work/bootstrap.log" 2>&1) ||
        { tail -n 40 "$work/bootstrap.log" >&2; fail "cmake bootstrap failed (log tail above)."; }
    make -C "$work/src/build" -j"$(nproc)" >"$work/make.log" 2>&1 ||
        { tail -n 40 "$work/make.log" >&2; fail "compilation failed (log tail above)."; }

    CURRENT_STEP="timescaledb: install"
    as_root make -C "$work/src/build" install >"$work/install.log" 2>&1 ||
        { tail -n 40 "$work/install.log" >&2; fail "make install failed (log tail above)."; }
    rm -rf "$work"
    trap - EXIT
}

# --- step 3: verify --------------------------------------------------------------------------------
verify() {
    CURRENT_STEP="verify"
    local control version
    control=$(timescaledb_control)
    [[ -f $control ]] || fail "$control is missing after installation."
    version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$control")
    command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || fail "mosquitto binary not found."
    command -v mosquitto_passwd >/dev/null 2>&1 || fail "mosquitto_passwd not found (package mosquitto)."
    /usr/bin/python3 - <<'EOF' || fail "GStreamer RTSP server bindings or plugins are not usable from /usr/bin/python3."
import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: F401

Gst.init(None)
missing = [name for name in ("filesrc", "qtdemux", "h264parse", "rtph264pay") if Gst.ElementFactory.find(name) is None]
if missing:
    raise SystemExit(f"missing GStreamer elements: {missing}")
EOF
    command -v npm >/dev/null 2>&1 || fail "npm not found."
    say "verified: PostgreSQL ${PG_MAJOR} + TimescaleDB ${version:-?} ($control), mosquitto, GStreamer RTSP server, npm"
}

install_apt_packages
install_timescaledb
verify
say "everything is present"
