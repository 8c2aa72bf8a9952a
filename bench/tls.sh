#!/usr/bin/env bash
# HTTPS through Portico versus nginx, with the same certificate (ECDSA P-256) and the same
# backend (bench-backend): requests/s on kept-alive connections, and TLS handshakes/s with a
# new connection per request (`Connection: close`). Run by hand:
#   bench/tls.sh            (DURATION=15s CONNECTIONS=32 THREADS=1 to change the load)
# Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk nginx openssl; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install wrk nginx-light openssl)" >&2; exit 1; }
done
source bench/common.sh
backend_port="$(free_port)"; portico_port="$(free_port)"; nginx_port="$(free_port)"

# One certificate for both: localhost and *.localhost, ECDSA P-256 (what ACME CAs issue by
# default today), self-signed; wrk does not verify it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:*.localhost" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

"$bin/bench-backend" "$backend_port" & pids+=($!)
cat > "$work/portico.toml" <<TOML
[server]
listen = "127.0.0.1:$portico_port"
data_dir = "data"
[tls]
certificates = [{ cert = "cert.pem", key = "key.pem" }]
[[apps]]
name = "bench"
source = "$PWD/bench"
framework = "command"
command = ["$bin/bench-backend", "\$PORT"]
access = "public"
TOML
PORTICO_LOG=warn "$bin/portico" up --config "$work/portico.toml" >"$work/portico.log" 2>&1 & pids+=($!)
portico_pid=$!

# nginx as the TLS-terminating reverse proxy, as its documentation recommends: HTTP/2,
# keep-alive upstreams, a shared session cache (tickets off, as Portico issues none).
cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$backend_port; keepalive 64; }
  server {
    # \`http2 on;\` from nginx 1.25; Debian's 1.22 takes it on the listen line.
    listen 127.0.0.1:$nginx_port ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets off;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

for _ in $(seq 1 100); do
  curl -skf "https://localhost:$portico_port/readyz" >/dev/null \
    && curl -skf "https://localhost:$nginx_port/" >/dev/null && break
  sleep 0.1
done

run() { wrk -t"$threads" -c"$connections" -d"$duration" --latency "$@" | grep -E 'Requests/sec|50%|99%|Non-2xx|Socket errors'; }
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "== HTTPS, kept-alive connections: wrk -t$threads -c$connections -d$duration --latency"
echo "-- Portico (path mode)"; run "https://localhost:$portico_port/apps/bench/"
echo "-- nginx $(nginx -v 2>&1 | cut -d/ -f2)"; run "https://localhost:$nginx_port/"
echo "== TLS handshakes: a new connection per request (Connection: close)"
echo "-- Portico"; run -H "Connection: close" "https://localhost:$portico_port/apps/bench/"
echo "-- nginx"; run -H "Connection: close" "https://localhost:$nginx_port/"
echo "== Portico resident memory after the run: $(ps -o rss= -p "$portico_pid" | awk '{printf "%.1f MiB", $1/1024}')"
