-- wrk reports p99 at most; this prints requests/s and p50/p99/p99.9 in one line the bench
-- scripts parse. Errors include non-2xx answers, so a proxy refusing requests cannot look fast.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
