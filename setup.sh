#!/usr/bin/env bash
# Idempotent setup for a Debian 12 machine: system packages from configs/debian-packages.txt,
# then a virtualenv in .venv with mmulab and its test tools. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")"

packages=$(grep -v -E '^\s*(#|$)' configs/debian-packages.txt | awk '{print $1}')
missing=()
for pkg in $packages; do
    name=${pkg%%=*}
    want=${pkg#*=}
    have=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$name" 2>/dev/null || true)
    if [[ $have != ii* ]] || { [[ $pkg == *=* ]] && [[ ${have:3} != "$want" ]]; }; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
stamp=.venv/.mmulab-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi
