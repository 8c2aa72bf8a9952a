#!/usr/bin/env bash
# Scaling, measured by hand (not a test):
#   1. time to first byte of a Streamlit page when the app is asleep (scale.min = 0: the
#      request wakes it and is held until a replica is ready) versus with a warm spare
#      (scale.warm = 1), a new client each time;
#   2. memory per replica: the resident memory of each demo dashboard's process group;
#   3. the autoscaler's reaction time: from a second browser session arriving to the
#      decision to scale out, and to the new replica serving.
# Run: bench/scale.sh   (ROUNDS=5 to change the repetitions). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl python3 Rscript; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 1; }
done
source bench/common.sh
# Where scripts/install-deps puts uv, which builds the dashboards' environments.
export PATH="$HOME/.cache/portico/tools/bin:$PATH"
rounds="${ROUNDS:-5}"
port="$(free_port)"
base="http://127.0.0.1:$port"

app() { # name source scale
  printf '[[apps]]\nname = "%s"\nsource = "%s"\naccess = "public"\nscale = %s\n' "$1" "$2" "$3"
}
{
  printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "data"\n' "$port"
  app cold "$PWD/examples/streamlit" '{ min = 0, idle_timeout_secs = 1, scale_down_delay_secs = 1 }'
  app warm "$PWD/examples/streamlit" '{ min = 0, warm = 1, max = 2 }'
  app echo "$PWD/crates/portico/tests/fixtures/echo" \
    '{ min = 1, max = 2, sessions_per_replica = 1, target_utilization = 1.0 }'
  for framework in flask dash shiny r-shiny; do
    app "$framework" "$PWD/examples/$framework" '{ min = 1 }'
  done
} > "$work/portico.toml"
PORTICO_LOG=info "$bin/portico" up --config "$work/portico.toml" >"$work/portico.log" 2>&1 & pids+=($!)
portico() { "$bin/portico" "$@" --config "$work/portico.toml"; }

# Bounded waits on what Portico reports, never fixed sleeps.
status_of() { curl -s "$base/readyz" | python3 -c "import json,sys; print(json.load(sys.stdin)['apps'].get('$1',''))" 2>/dev/null || true; }
wait_for() { # description, command…: polls every 50 ms for up to 5 minutes
  local what="$1"; shift
  for _ in $(seq 6000); do "$@" && return 0; sleep 0.05; done
  echo "bench: timed out waiting for $what" >&2; tail -20 "$work/portico.log" >&2; exit 1
}
ready_replicas() { portico replicas "$1" --json | python3 -c "import json,sys; print(sum(r['state']=='ready' for r in json.load(sys.stdin)['replicas']))"; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
has_replicas() { [ "$(ready_replicas "$1")" = "$2" ]; }
wait_for "Portico to be ready" curl -sf -o /dev/null "$base/readyz"
wait_for "the warm spare" has_replicas warm 1

ttfb() { curl -s -o /dev/null -w '%{time_starttransfer}' -H "Host: $1.localhost" "$base/"; }
cold=(); warm=()
for _ in $(seq "$rounds"); do
  wait_for "cold to be asleep" is_status cold sleeping
  cold+=("$(ttfb cold)")
  warm+=("$(ttfb warm)")
done

echo
echo "== time to first byte, Streamlit (seconds; $rounds rounds, a new client each) =="
printf 'asleep (min = 0):      %s\n' "${cold[*]}"
printf 'warm spare (warm = 1): %s\n' "${warm[*]}"

echo
echo "== memory per replica (resident, whole process group) =="
python3 - "$work" <<'PY'
import os, sys
def env(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    except OSError:
        return {}
def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
instance = os.path.realpath(os.path.join(sys.argv[1], "data")).encode()
by_replica = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    e = env(pid)
    if e.get(b"PORTICO_INSTANCE") == instance and b"PORTICO_REPLICA" in e:
        replica = e[b"PORTICO_REPLICA"].decode()
        by_replica.setdefault(replica, [0, 0])
        by_replica[replica][0] += rss_kib(pid)
        by_replica[replica][1] += 1
for replica, (kib, processes) in sorted(by_replica.items()):
    print(f"{replica:<22} {kib / 1024:7.1f} MiB in {processes} process(es)")
PY

echo
echo "== autoscaler reaction (echo app, 1 session per replica) =="
for jar in a b; do curl -s -o /dev/null -c "$work/$jar" -b "$work/$jar" -H 'Host: echo.localhost' "$base/"; done
start=$(date +%s.%N)
# Their second requests carry the cookie: now two sessions for one replica.
for jar in a b; do curl -s -o /dev/null -c "$work/$jar" -b "$work/$jar" -H 'Host: echo.localhost' "$base/"; done
wait_for "the scale-out decision" grep -q "scaled out to 2 replicas" "$work/portico.log"
decided=$(date +%s.%N)
wait_for "the second replica" has_replicas echo 2
served=$(date +%s.%N)
python3 -c "print(f'decision after {$decided-$start:.2f}s, second replica serving after {$served-$start:.2f}s')"
echo "Portico RSS: $(awk '/VmRSS/ {print $2/1024 " MiB"}' "/proc/${pids[0]}/status")"
