// Drives loadtest (npm, pinned in package.json) at a fixed arrival rate for bench/latency.py.
//   node bench/open_loop.mjs '{"url": ..., "rate": R, "seconds": S, "body": ..., "headers": {...}}'
// With requestsPerSecond, loadtest sends each request on a schedule (a timer that catches
// up on its own drift), on a free or a new connection, whether or not earlier requests
// were answered: open loop. A request's latency runs from that scheduled send until its
// answer. Prints one JSON line: every answered request's latency (ms), the errors and how
// many requests were sent, and how many clients (connections) loadtest opened. Requests still unanswered when the window closes are
// counted in "unanswered" (loadtest drops them).
import { loadTest } from "loadtest";

const config = JSON.parse(process.argv[2]);
const latencies = [];
let errors = 0;
let firstError = null;
let started = 0;
// How late each request left against its schedule (request n is due at the first one's
// time + (n - 1) / rate): loadtest times a request from when its timer fired, so this
// says whether that was the intended send time (a generator that keeps up) or not.
const lags = [];
let firstAt = 0;
const interval = 1000 / config.rate;
function sent() {
  const now = performance.now();
  started += 1;
  if (started === 1) firstAt = now;
  lags.push(now - (firstAt + (started - 1) * interval));
  return started;
}

const result = await loadTest({
  url: config.url,
  method: "POST",
  body: config.body,
  contentType: "application/json",
  headers: config.headers,
  requestsPerSecond: config.rate,
  maxSeconds: config.seconds,
  agentKeepAlive: true,
  timeout: 30000,
  indexParamLiteral: "[<id>]",
  // Called once per request as it is sent: the body's unique id, and the count sent.
  indexParamCallback: sent,
  quiet: true,
  statusCallback: (error, res) => {
    const ok = !error && res && res.statusCode >= 200 && res.statusCode < 300;
    if (ok) {
      latencies.push(res.requestElapsed);
    } else {
      errors += 1;
      firstError ??= String(error ?? `HTTP ${res?.statusCode}`);
    }
  },
});

process.stdout.write(JSON.stringify({
  latencies_ms: latencies,
  errors,
  first_error: firstError,
  started,
  clients: result.clients,
  schedule_lag_ms: lags,
  seconds: result.totalTimeSeconds,
}) + "\n");
