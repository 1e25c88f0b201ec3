// Drives the official Segment (npm @segment/analytics-node) and RudderStack
// (@rudderstack/rudder-sdk-node) Node SDKs against trackd, unchanged but for host and
// write key. Run by tests/gateway/test_segment_sdk.py, which checks the database
// afterwards. Prints one JSON object: per SDK, the delivery errors of the good key's
// calls (none expected) and the HTTP status a wrong key got.
//
// Usage: node segment_sdk.mjs <host> <writeKey> <batchSize>
import { Analytics } from "@segment/analytics-node";
import RudderAnalytics from "@rudderstack/rudder-sdk-node";

const [host, writeKey, batchArg] = process.argv.slice(2);
const batchSize = Number(batchArg);

// The calls an app makes, in order; `send(method, message)` returns a promise settled
// when the SDK reports the message delivered (or not).
async function drive(send, flush, tag) {
  const anonymousId = `anon-${tag}`;
  const userId = `user-${tag}`;
  const first = [
    send("track", { anonymousId, event: "Viewed Pricing", properties: { plan: "pro" },
                    messageId: `${tag}-pricing` }),
    send("page", { anonymousId, category: "Docs", name: "Install",
                   properties: { path: "/install" }, messageId: `${tag}-page` }),
    send("identify", { userId, anonymousId, messageId: `${tag}-identify`,
                       traits: { email: `${tag}@example.com`, plan: "pro" } }),
    send("alias", { previousId: `old-${tag}`, userId, messageId: `${tag}-alias` }),
    send("track", { userId, event: "Signed Up", properties: { seats: 3 },
                    messageId: `${tag}-signup` }),
  ];
  const errors = await flush(first);
  for (let round = 0; round < 2; round++) {  // the same message ids twice: stored once
    const bulk = [];
    for (let i = 0; i < batchSize; i++) {
      bulk.push(send("track", { userId, event: "Bulk", properties: { i, round },
                                messageId: `${tag}-bulk-${i}` }));
    }
    errors.push(...await flush(bulk));
  }
  return errors;
}

const settle = (promises) => Promise.all(promises).then((errs) => errs.filter(Boolean));

async function segment(key, tag) {
  const analytics = new Analytics({ writeKey: key, host, flushInterval: 50, maxRetries: 1 });
  const send = (method, message) => new Promise((resolve) => {
    analytics[method](message, (err) => resolve(err ? String(err.message ?? err) : null));
  });
  const errors = await drive(send, settle, tag);
  await analytics.closeAndFlush();
  return errors;
}

async function rudderstack(key, tag) {
  let status = null;
  const analytics = new RudderAnalytics(key, {
    dataPlaneUrl: host, flushInterval: 60000, retryCount: 1, logLevel: "off",
    errorHandler: (err) => { status = err.response ? err.response.status : String(err); },
  });
  const send = (method, message) => new Promise((resolve) => {
    analytics[method](message, (err) => resolve(err ? String(err.message ?? err) : null));
  });
  // flush() sends one batch of flushAt messages: flush until every message is settled.
  const flush = async (promises) => {
    let done = false;
    const all = settle(promises).then((errors) => { done = true; return errors; });
    while (!done) {
      await analytics.flush().catch(() => {});
      await new Promise((resolve) => setImmediate(resolve));
    }
    return all;
  };
  const errors = await drive(send, flush, tag);
  return { errors, status: () => status, analytics, flush, send };
}

const results = {};

results.segment = { errors: await segment(writeKey, "node-segment") };
{
  const analytics = new Analytics({ writeKey: "not-a-key", host, maxRetries: 1 });
  results.segment.wrongKey = await new Promise((resolve) => {
    analytics.track({ userId: "u", event: "Nope" }, (err) => {
      const match = /\[(\d+)\]/.exec(String(err && err.message));
      resolve(match ? Number(match[1]) : String(err));
    });
  });
  await analytics.closeAndFlush();
}

const rudder = await rudderstack(writeKey, "node-rudderstack");
results.rudderstack = { errors: rudder.errors };
{
  const wrong = await rudderstack("not-a-key", "node-rudderstack-wrong").catch((e) => e);
  results.rudderstack.wrongKey = wrong.status();
}

console.log(JSON.stringify(results));
process.exit(0);
