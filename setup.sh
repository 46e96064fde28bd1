#!/usr/bin/env bash
# Idempotent setup for a Debian 12 machine: system packages from configs/debian-packages.txt (with --tests,
# also tests/debian-packages.txt), then a virtualenv in .venv with mmulab and its test tools. Safe to run
# again and again; when everything is installed it makes no apt call at all. Sourcing it (tests do) only defines the functions.

# The first word of each package line: name, name=VERSION (pinned) or name=?VERSION (preferred).
package_specs() {
    grep -v -E '^\s*(#|$)' "$1" | awk '{print $1}'
}

# The specs not installed as asked, from dpkg's database only: a preferred version is met by any version.
missing_specs() {
    local spec name want have
    for spec in "$@"; do
        name=${spec%%=*}
        want=${spec#"$name"}
        have=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$name" 2>/dev/null || true)
        if [[ $have != ii* ]] || { [[ $want == =[^?]* ]] && [[ ${have:3} != "${want#=}" ]]; }; then
            echo "$spec"
        fi
    done
}

# The apt-get install argument for a spec (after apt-get update): name=?VERSION becomes name=VERSION while
# the archive offers VERSION, else name (the archive's current version); one line on stderr says which.
apt_argument() {
    local spec=$1 name=${1%%=*} want versions current
    if [[ $spec != "$name=?"* ]]; then
        echo "$spec"
        return
    fi
    want=${spec#"$name=?"}
    versions=$(apt-cache madison "$name" 2>/dev/null | awk -F'|' '{gsub(/[ \t]/, "", $2); print $2}' || true)
    if grep -qxF -e "$want" <<<"$versions"; then
        echo "setup: $name: installing the pinned version $want" >&2
        echo "$name=$want"
    else
        current=$(apt-cache policy "$name" 2>/dev/null | awk '$1 == "Candidate:" {print $2}' || true)
        echo "setup: $name: the pinned version $want is gone from the archive; installing its current version" \
            "${current:-(unknown)}, which mmulab trusts through dpkg's md5sums (apt's signed archive)" >&2
        echo "$name"
    fi
}

# The network of this machine's first global IPv4 address (10.1.2.3/24 -> 10.1.2.0/24), and the address.
own_network() {
    local cidr
    cidr=$(ip -o -4 addr show scope global 2>/dev/null | awk '{print $4; exit}')
    [[ -n $cidr ]] || return 1
    python3 -c 'import ipaddress, sys; i = ipaddress.ip_interface(sys.argv[1]); print(i.network, i.ip)' "$cidr"
}

# Installs the specs dpkg does not have as asked, in one apt-get call (after apt-get update); with nothing
# missing it makes no apt call at all.
install_missing() {
    local missing args sudo spec
    missing=$(missing_specs "$@")
    [[ -n $missing ]] || return 0
    mapfile -t missing <<<"$missing"
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    echo "setup: installing ${missing[*]%%=\?*}"
    $sudo apt-get update -qq
    args=()
    for spec in "${missing[@]}"; do
        args+=("$(apt_argument "$spec")")
    done
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${args[@]}" >/dev/null
}

# --distcc-server: a build-farm server needs distcc and the cross compiler only (tests/test_distcc.py's
# probe compares its objects with the client's: install the same Debian release's compiler). Prints the one
# distccd command line, bound to this machine's address and allowing its network only (it logs to syslog:
# started as root it runs as the distccd user, who could not write a --log-file under /var/log).
distcc_server() {
    local network address
    install_missing distcc gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu
    if ! read -r network address < <(own_network); then
        echo "setup: no global IPv4 address on this machine (ip -4 addr): distccd needs one the clients reach" >&2
        return 1
    fi
    echo "setup: distcc server ready; start it with (no authentication: a trusted network only, never the internet):"
    echo "distccd --daemon --listen $address --allow $network --jobs $(nproc) --nice 10"
    echo "setup: on each client: export MMULAB_DISTCC_HOSTS=\"$address/$(nproc) ...\" (docs/build-farm.md)"
}

main() {
    set -euo pipefail
    cd "$(dirname "${BASH_SOURCE[0]}")"
    if [[ ${1:-} == --distcc-server ]]; then
        distcc_server
        return
    fi
    local specs
    specs=$(package_specs configs/debian-packages.txt)
    # --tests: also what only the tests need (tests/debian-packages.txt: the browser for the release page).
    if [[ ${1:-} == --tests ]]; then
        specs+=$'\n'$(package_specs tests/debian-packages.txt)
    fi
    mapfile -t specs <<<"$specs"
    install_missing "${specs[@]}"

    if [[ ! -x .venv/bin/python ]]; then
        python3 -m venv .venv
    fi
    local stamp=.venv/.mmulab-installed
    if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[test]'
        touch "$stamp"
    fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
