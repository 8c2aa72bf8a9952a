#!/usr/bin/env bash
# Deploys and rollbacks, measured by hand (not a test): the Dash demo is deployed as a new
# release with `portico deploy` (its environment already built, so what is measured is
# Portico's own path: upload, unpack, detect, start, readiness, switch), then rolled back
# and forth with `portico rollback`, each timed from the command's start to its "is live".
# Run: bench/deploy.sh   (ROUNDS=5 to change the repetitions). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 1; }
done
source bench/common.sh
# Where scripts/install-deps puts uv, which builds the dashboards' environments.
export PATH="$HOME/.cache/portico/tools/bin:$PATH"
rounds="${ROUNDS:-5}"
port="$(free_port)"
base="http://127.0.0.1:$port"

cp -r examples/dash "$work/v2"
sed -i 's/Hello from Dash/Hello from Dash, release 2/' "$work/v2/app.py"
cat > "$work/portico.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "data"
[[apps]]
name = "dash"
source = "$PWD/examples/dash"
access = "public"
TOML
"$bin/portico" up --config "$work/portico.toml" >"$work/portico.log" 2>&1 & pids+=($!)
portico() { "$bin/portico" --config "$work/portico.toml" "$@"; }
wait_for() { # description, command…: polls every 50 ms for up to 5 minutes
  local what="$1"; shift
  for _ in $(seq 6000); do "$@" && return 0; sleep 0.05; done
  echo "bench: timed out waiting for $what" >&2; tail -20 "$work/portico.log" >&2; exit 1
}
wait_for "Portico to be ready" curl -sf -o /dev/null "$base/readyz"
export PORTICO_TOKEN="$(portico tokens create admin@localhost --name bench | grep -o 'portico_[A-Za-z0-9_-]*' | head -1)"
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
version() { curl -s -H 'Host: dash.localhost' "$base/_dash-layout" | grep -o 'Hello from Dash[^"]*' | head -1; }

start=$(now); portico deploy "$work/v2" --app dash >"$work/deploy.out"; done_at=$(now)
deploy_time=$(elapsed "$start" "$done_at")
[ "$(version)" = "Hello from Dash, release 2" ] || { echo "bench: release 2 is not served" >&2; exit 1; }

back=(); forth=()
for _ in $(seq "$rounds"); do
  start=$(now); portico rollback dash 1 >/dev/null; back+=("$(elapsed "$start" "$(now)")")
  [ "$(version)" = "Hello from Dash" ] || { echo "bench: rollback did not serve release 1" >&2; exit 1; }
  start=$(now); portico rollback dash 2 >/dev/null; forth+=("$(elapsed "$start" "$(now)")")
  [ "$(version)" = "Hello from Dash, release 2" ] || { echo "bench: rollback did not serve release 2" >&2; exit 1; }
done

echo
echo "== Dash demo, environment cached (seconds, command start to \"is live\") =="
echo "portico deploy (upload, build, start, switch): $deploy_time"
printf 'portico rollback to release 1:  %s\n' "${back[*]}"
printf 'portico rollback to release 2:  %s\n' "${forth[*]}"
echo "Portico RSS: $(awk '/VmRSS/ {print $2/1024 " MiB"}' "/proc/${pids[0]}/status")"
