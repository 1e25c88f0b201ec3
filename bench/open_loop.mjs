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
  indexParamCallback: () => ++started,
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
  seconds: result.totalTimeSeconds,
}) + "\n");
