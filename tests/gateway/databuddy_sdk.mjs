// Drives the official Databuddy SDK (npm @databuddy/sdk, its Node entry) against trackd,
// unchanged but for apiUrl. Run by tests/gateway/test_databuddy_sdk.py, which checks the
// database afterwards. Prints one JSON object: every call's result, in order.
//
// Usage: node databuddy_sdk.mjs <apiUrl> <apiKey> <websiteId>
import { Databuddy } from "@databuddy/sdk/node";

const [apiUrl, apiKey, websiteId] = process.argv.slice(2);
const results = {};

// One event at a time (no batching).
const direct = new Databuddy({ apiKey, websiteId, apiUrl, enableBatching: false,
                               namespace: "sdk", source: "node" });
results.track = await direct.track({
  name: "signup_started", anonymousId: "anon-sdk", sessionId: "sess-sdk",
  properties: { plan: "pro", seats: 3 }, eventId: "sdk-evt-1",
});
// The SDK does not send eventId (it deduplicates on its side): a repeat is not sent.
results.trackRepeated = await direct.track({ name: "signup_started", anonymousId: "anon-sdk",
                                             eventId: "sdk-evt-1" });

// Queued events, sent by flush() as one array.
const queued = new Databuddy({ apiKey, websiteId, apiUrl, batchSize: 50, batchTimeout: 60000 });
queued.setGlobalProperties({ app: "trackd-test" });
for (let i = 0; i < 3; i++) {
  results[`queued${i}`] = await queued.track({ name: "page_viewed", anonymousId: "anon-sdk",
                                               properties: { page: i } });
}
results.flush = await queued.flush();

// batch() directly, with a profileId and an explicit timestamp.
results.batch = await direct.batch([
  { name: "report_exported", profileId: "user-sdk", timestamp: 1700000000000,
    properties: { format: "csv" } },
  { name: "report_shared", anonymousId: "anon-other", anonymizeVisitorIds: true },
]);

// identify links anon-sdk to user-sdk; later events of anon-sdk are the user's too.
results.identify = await direct.identify({ profileId: "user-sdk", anonymousId: "anon-sdk",
                                           traits: { plan: "pro", company: "Acme" } });
results.trackAfterIdentify = await direct.track({ name: "checkout", anonymousId: "anon-sdk" });

// A failure the SDK reports: an invalid event (name over 256 characters).
results.invalid = await direct.track({ name: "x".repeat(300), anonymousId: "anon-sdk" });

console.log(JSON.stringify(results));
