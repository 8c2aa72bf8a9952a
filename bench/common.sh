# Sourced by the bench scripts: load settings, a release build, a scratch folder, and a cleanup
# that stops every process the script started (append their pids to `pids`).
duration="${DURATION:-15s}"; connections="${CONNECTIONS:-32}"; threads="${THREADS:-1}"

cargo build --release --quiet -p portico -p portico-bench
bin="$PWD/target/release"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
