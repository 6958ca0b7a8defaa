#!/bin/sh
# One fjmcp broker under a long or special load, outside bench.py's matrix:
#   one_broker.sh soak       scenario b's load (16 sessions) for $SOAK_SECONDS
#                            (default 600) through the harness's loadgen.py,
#                            the broker's VmRSS sampled from /proc every 10 s;
#                            afterwards: sessions left, children, open fds.
#   one_broker.sh stateless  bench/stateless_load.py: 64 2026-07-28 stateless
#                            conversations of one user (one shared child): the
#                            first alone (it brings the child up), then 63 at once.
# Run from the checkout with BENCH_HOME set (make soak / make bench-full do);
# the broker's config is bench/fjmcp.conf.in with the echo child, no sandbox.
set -eu
mode=${1:?usage: one_broker.sh soak|stateless}
cd "$(dirname "$0")/.."
root=$(pwd)
bench_dir=${BENCH_DIR:-$root/../shared/bench}
py="${BENCH_HOME:?BENCH_HOME must name the harness install}/.venv/bin/python"
out="${BENCH_OUT:-$root/.bench-out}/$mode-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
bench/prepare.sh > /dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
conf="$out/fjmcp.conf"
# The harness's own child command ({python} is the bench venv's Python):
# a python3 found on PATH may be a version-manager shim (pyenv's runs bash
# scripts first: about 100 ms of every child start).
child="$py $bench_dir/children/echo_server.py"
sed -e "s|{host}|127.0.0.1|g" -e "s|{port}|$port|g" -e "s|{cwd}|$root|g" \
    -e "s|{child_cmd}|$child|g" -e "s|{{|{|g" -e "s|}}|}|g" \
    bench/fjmcp.conf.in > "$conf"
export ECHO_REQUIRE_TOKEN=FORGEJO_ACCESS_TOKEN
"$root/.venv/bin/twistd" -n --pidfile= fjmcp --config "$conf" > "$out/broker.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
i=0
until curl -sf "http://127.0.0.1:$port/healthz" > /dev/null; do
    i=$((i + 1)); [ $i -lt 150 ] || { echo "broker did not start (see $out/broker.log)" >&2; exit 1; }
    sleep 0.2
done
token=$(bench/token.sh "$conf")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
url="http://127.0.0.1:$port/mcp"
case "$mode" in
soak)
    seconds=${SOAK_SECONDS:-600}
    echo "soak: $seconds s of 16 sessions against pid $pid; RSS (kB) every 10 s in $out/rss.tsv"
    ( t=0; while kill -0 $pid 2>/dev/null; do echo "$t	$(rss)"; sleep 10; t=$((t + 10)); done ) > "$out/rss.tsv" &
    sampler=$!
    BENCH_SESSION_INDEX=0 "$py" "$bench_dir/loadgen.py" --url "$url" --sessions 16 --warmup 20 \
        --duration "$seconds" --max-time $((seconds + 120)) --bearer-cmd "bench/token.sh $conf" \
        --out "$out/loadgen.json" > /dev/null
    kill $sampler 2>/dev/null || true
    sleep 2
    children=$(pgrep -P $pid | wc -l)
    fds=$(ls /proc/$pid/fd | wc -l)
    python3 - "$out/rss.tsv" "$out/loadgen.json" "$children" "$fds" <<'PY'
import json, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
load = json.load(open(sys.argv[2]))
def at(second):
    best = min(rows, key=lambda r: abs(r[0] - second))
    return best[1] / 1024
end = rows[-1][0]
m2, m10 = at(min(120, end)), at(end)
print(json.dumps({"req_per_s": load["req_per_s"], "errors": load["total_errors"],
    "rss_mb_minute_2": round(m2, 1), "rss_mb_end": round(m10, 1),
    "end_over_minute_2": round(m10 / m2, 3), "children_left": int(sys.argv[3]),
    "open_fds_after": int(sys.argv[4])}, indent=1))
PY
    ;;
stateless)
    "$py" bench/stateless_load.py --url "$url" --bearer "$token" --pid $pid | tee "$out/stateless.json"
    ;;
*) echo "unknown mode $mode" >&2; exit 2 ;;
esac
