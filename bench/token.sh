#!/bin/sh
# bearer_cmd of bench/fjmcp.toml: print the broker access token of one MCP
# session, line BENCH_SESSION_INDEX + 1 (line 1 when unset, as for the
# conformance run's token proxy) of this broker's token file.
#
# A broker token is bound to <public_url>/mcp, and bench.py starts every
# broker on a fresh port, so tokens cannot be minted once for the whole run:
# the first call for a broker (named by its rendered config, $1) mints them
# with ONE `fjmcp admin issue-token --count N` (through the running daemon's
# admin socket), under a lock, into .bench-state/tokens/; the other sessions
# only read their line. Time spent here is reported apart by the harness
# (token_fetch_ms), not as session setup.
set -eu
config=${1:?usage: token.sh RENDERED-CONFIG}
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.bench-state/tokens"
count=${BENCH_TOKEN_COUNT:-64}
index=${BENCH_SESSION_INDEX:-0}
line=$((index + 1))
[ "$line" -le "$count" ] || { echo "token.sh: session index $index >= $count tokens" >&2; exit 1; }
[ -d "$dir" ] || { echo "token.sh: $dir is missing: run bench/prepare.sh" >&2; exit 1; }

file="$dir/$(basename "$config").tokens"
if [ ! -s "$file" ]; then
    exec 9>"$file.lock"
    flock 9
    if [ ! -s "$file" ]; then
        printf 'bench-placeholder-forgejo-token\n' |
            "$root/.venv/bin/fjmcp" admin --config "$config" issue-token \
                --user bench --forgejo-token-file - --count "$count" > "$file.tmp"
        mv "$file.tmp" "$file"
    fi
    exec 9>&-
fi
sed -n "${line}p" "$file"
