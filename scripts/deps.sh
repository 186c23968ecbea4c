# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/demo.sh; source it, do not run it.
#
# craft_install_deps   installs the Debian packages craft needs, only those missing.
# craft_build DIR ARGS configures and builds the tree in DIR with extra cmake ARGS.

CRAFT_DEBIAN_PACKAGES="build-essential cmake pkg-config libcmocka-dev libuv1-dev liblmdb-dev
libssl-dev libhttp-parser-dev openssl redis-tools curl python3 gnuplot-nox
clang libclang-rt-14-dev clang-format"

craft_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

craft_jobs()
{
    nproc 2>/dev/null || echo 2
}

# Succeeds when the Debian package $1 is installed (not merely known to dpkg).
craft_package_installed()
{
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

craft_install_deps()
{
    local missing="" pkg
    local -a prefix=()

    if ! command -v dpkg >/dev/null 2>&1; then
        echo "deps: no dpkg here (not Debian?); assuming the build tools are installed" >&2
        return 0
    fi
    for pkg in $CRAFT_DEBIAN_PACKAGES; do
        craft_package_installed "$pkg" || missing="$missing $pkg"
    done
    if [ -z "$missing" ]; then
        return 0
    fi

    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "deps: missing packages and not root (no sudo); please run as root:" >&2
            echo "  apt-get update && apt-get install -y$missing" >&2
            return 1
        fi
        prefix=(sudo)
    fi
    echo "deps: installing:$missing"
    # shellcheck disable=SC2086 # word splitting of $missing is intended
    "${prefix[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        "${prefix[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends $missing
}

# craft_build DIR [CMAKE_ARGS...]: configure (RelWithDebInfo: -O2 -g, asserts
# on) and build. Returns non-zero if either step fails.
craft_build()
{
    local dir="$1"
    shift
    cmake -S "$craft_root" -B "$craft_root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
        cmake --build "$craft_root/$dir" -j "$(craft_jobs)"
}
