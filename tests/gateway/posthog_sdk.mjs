// Drives the official PostHog Node SDK (npm posthog-node) against trackd, unchanged but
// for host and project API key. Run by tests/gateway/test_posthog_sdk.py, which checks
// the database afterwards. Prints one JSON object: the errors the good key's flushes
// raised (none expected) and the HTTP status a wrong key got.
//
// Usage: node posthog_sdk.mjs <host> <apiKey> <batchSize> <name=uuid,...>
import { PostHog } from "posthog-node";

const [host, apiKey, batchArg, idsArg] = process.argv.slice(2);
const batchSize = Number(batchArg);
const ids = Object.fromEntries(idsArg.split(",").map((pair) => pair.split("=")));
const options = { host, flushAt: 1000, flushInterval: 0, fetchRetryCount: 0,
                  maxBatchSize: 100 };

const errors = [];
const client = new PostHog(apiKey, options);
client.on("error", (err) => errors.push(String(err && err.message)));
const anon = "anon-node";
const user = "user-node";

client.capture({ distinctId: anon, event: "viewed pricing", properties: { plan: "pro" },
                 uuid: ids.pricing });
client.capture({ distinctId: anon, event: "$pageview", uuid: ids.page,
                 properties: { $current_url: "https://example.com/install" } });
client.identify({ distinctId: user, properties: {
  $set: { email: "node@example.com" }, $set_once: { first_seen: "pricing" },
  $anon_distinct_id: anon } });
client.setPersonProperties({ distinctId: user, properties: { plan: "pro" },
                             propertiesOnce: { first_seen: "never applied" } });
client.capture({ distinctId: "old-node", event: "earlier", uuid: ids.earlier });
// $create_alias: distinct_id is the earlier id, alias the user.
client.alias({ distinctId: "old-node", alias: user });
client.capture({ distinctId: user, event: "signed up", properties: { seats: 3 },
                 uuid: ids.signup });
await client.flush();
for (let round = 0; round < 2; round++) {  // the same uuids twice: stored once
  for (let i = 0; i < batchSize; i++) {
    client.capture({ distinctId: user, event: "bulk", properties: { i, round },
                     uuid: ids[`bulk-${i}`] });
  }
  await client.flush();
}
await client.shutdown();

let wrongKey = null;
const wrong = new PostHog("not-a-key", options);
wrong.on("error", () => {});
wrong.capture({ distinctId: "u", event: "nope" });
try {
  await wrong.flush();
} catch (err) {
  wrongKey = err && err.response ? err.response.status : String(err);
}
await wrong.shutdown().catch(() => {});

console.log(JSON.stringify({ errors, wrongKey }));
process.exit(0);
