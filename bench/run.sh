#!/usr/bin/env bash
# Portico's overhead, measured: a fast backend (bench-backend) direct versus through Portico,
# for small HTTP responses (wrk) and WebSocket echo round trips (ws-rtt). Run by hand:
#   bench/run.sh            (DURATION=15s CONNECTIONS=32 THREADS=1 to change the load)
# Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench: needs wrk (apt-get install wrk)" >&2; exit 1; }
source bench/common.sh
direct_port="$(free_port)"; portico_port="$(free_port)"

"$bin/bench-backend" "$direct_port" & pids+=($!)
cat > "$work/portico.toml" <<TOML
[server]
listen = "127.0.0.1:$portico_port"
data_dir = "data"
[[apps]]
name = "bench"
source = "$PWD/bench"
framework = "command"
command = ["$bin/bench-backend", "\$PORT"]
access = "public"

# The same backend behind sign-in, to measure what a signed-in request costs.
[[apps]]
name = "private"
source = "$PWD/bench"
framework = "command"
command = ["$bin/bench-backend", "\$PORT"]
access = "signed-in"
TOML
PORTICO_LOG=warn "$bin/portico" up --config "$work/portico.toml" >"$work/portico.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$portico_port/readyz" >/dev/null && curl -sf "http://127.0.0.1:$direct_port/" >/dev/null && break
  sleep 0.1
done

# Sign in as a browser would (form token, same-origin POST) and keep the session cookie.
portal="http://localhost:$portico_port"
printf '%s\n' "load-test-$$-velvet" | "$bin/portico" --config "$work/portico.toml" users add bench@example.com --password-stdin >/dev/null
curl -s -c "$work/jar" -b "$work/jar" "$portal/_portico/sign-in" -o "$work/sign-in.html"
token="$(grep -o 'name="csrf" value="[0-9a-f]*"' "$work/sign-in.html" | head -1 | sed 's/.*value="//; s/"$//')"
curl -s -c "$work/jar" -b "$work/jar" -H "Origin: $portal" -o /dev/null \
  --data-urlencode "email=bench@example.com" --data-urlencode "password=load-test-$$-velvet" \
  --data-urlencode "csrf=$token" --data-urlencode "return=/" "$portal/_portico/sign-in"
session="$(awk '$6 == "portico_session" { print $7 }' "$work/jar")"
[ -n "$session" ] || { echo "bench: could not sign in" >&2; exit 1; }

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "== wrk -t$threads -c$connections -d$duration --latency"
echo "-- direct"
wrk -t"$threads" -c"$connections" -d"$duration" --latency "http://127.0.0.1:$direct_port/" | grep -E 'Requests/sec|50%|90%|99%|Non-2xx'
echo "-- through Portico (host mode)"
wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "Host: bench.localhost:$portico_port" "http://127.0.0.1:$portico_port/" | grep -E 'Requests/sec|50%|90%|99%|Non-2xx'
echo "-- through Portico (path mode)"
wrk -t"$threads" -c"$connections" -d"$duration" --latency "http://127.0.0.1:$portico_port/apps/bench/" | grep -E 'Requests/sec|50%|90%|99%|Non-2xx'
echo "-- through Portico (path mode, signed in: session lookup, access rule, identity headers, assertion)"
wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "Host: localhost:$portico_port" -H "Cookie: portico_session=$session" \
  "http://127.0.0.1:$portico_port/apps/private/" | grep -E 'Requests/sec|50%|90%|99%|Non-2xx'
if command -v nginx >/dev/null; then
  # The peer: nginx as a reverse proxy with keep-alive upstream connections and WebSocket
  # support, configured the way its documentation recommends.
  nginx_port="$(free_port)"
  cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$direct_port; keepalive 64; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
    }
  }
}
NGINX
  nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$nginx_port/" >/dev/null && break; sleep 0.1; done
  echo "-- through nginx $(nginx -v 2>&1 | cut -d/ -f2)"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency "http://127.0.0.1:$nginx_port/" | grep -E 'Requests/sec|50%|90%|99%|Non-2xx'
fi
echo "== WebSocket echo, one connection, sequential"
echo "-- direct";           "$bin/ws-rtt" "ws://127.0.0.1:$direct_port/ws" 5000
echo "-- through Portico";  "$bin/ws-rtt" "ws://bench.localhost:$portico_port/ws" 5000
if [ -n "${nginx_port:-}" ]; then echo "-- through nginx"; "$bin/ws-rtt" "ws://127.0.0.1:$nginx_port/ws" 5000; fi
echo "== Portico resident memory after the run: $(ps -o rss= -p "${pids[1]}" | awk '{printf "%.1f MiB", $1/1024}')"
