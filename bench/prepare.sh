#!/bin/sh
# Prepare the state the benchmark's fjmcp brokers share (bench/fjmcp.conf.in):
# the directory .bench-state/ of this checkout, its token key file
# (`fjmcp admin gen-key`) and its store, created and checked by minting one
# token offline with `fjmcp admin issue-token`. Run from the checkout, before
# `../shared/bench/run bench.py|conformance_run.py --extra-config bench/fjmcp.toml`.
# Idempotent: an existing key and store are kept; minted token files of
# earlier runs are removed. It also writes .bench-state/fjmcp-policy.conf.in,
# the template of the `fjmcp-policy` target: bench/fjmcp.conf.in with the
# 50-rule [policy] of bench/policy-50.toml (`make bench-policy`).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
state="$root/.bench-state"
fjmcp="$root/.venv/bin/fjmcp"
[ -x "$fjmcp" ] || { echo "prepare.sh: $fjmcp is missing (make install)" >&2; exit 1; }

mkdir -p "$state"
chmod 700 "$state"
rm -rf "$state/tokens" "$state"/audit.log*
mkdir -m 700 "$state/tokens"

# A config like the ones bench.py renders (the port does not matter here).
conf="$state/prepare.conf"
python_bin=$(command -v python3)
sed -e "s|{host}|127.0.0.1|g" -e "s|{port}|1|g" -e "s|{cwd}|$root|g" \
    -e "s|{child_cmd}|$python_bin|g" -e "s|{{|{|g" -e "s|}}|}|g" \
    "$root/bench/fjmcp.conf.in" > "$conf"

# The fjmcp-policy target's template: the same broker under a 50-rule policy.
{ cat "$root/bench/fjmcp.conf.in"; echo; cat "$root/bench/policy-50.toml"; } \
    > "$state/fjmcp-policy.conf.in"

if [ ! -s "$state/token-keys" ]; then
    "$fjmcp" admin --config "$conf" gen-key
fi
# Creates (or migrates) the store and the user `bench`; proves the key works.
printf 'bench-placeholder-forgejo-token\n' |
    "$fjmcp" admin --config "$conf" issue-token --user bench \
        --forgejo-token-file - --count 1 > /dev/null
echo "prepare.sh: state ready in $state"
