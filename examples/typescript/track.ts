// A small TypeScript client of trackd's gRPC API, built on the stubs that scripts/stubs
// writes to gen/ts (protoc-gen-es) and on @connectrpc/connect-node's gRPC transport: it
// tracks an event, then sends an invalid one and reads the google.rpc.BadRequest field
// violation and the ErrorInfo reason from the error.
//
//   TRACKD_API_KEY=trk_… npx tsx examples/typescript/track.ts [127.0.0.1:50051]
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { BadRequestSchema, ErrorInfoSchema } from "../../gen/ts/google/rpc/error_details_pb.js";
import { ErrorReason } from "../../gen/ts/trackd/v1/errors_pb.js";
import { TrackingService } from "../../gen/ts/trackd/v1/tracking_pb.js";

async function main(target: string, key: string): Promise<void> {
  const transport = createGrpcTransport({ baseUrl: `http://${target}` });
  const client = createClient(TrackingService, transport);
  const options = { headers: { authorization: `Bearer ${key}` }, timeoutMs: 10_000 };

  const tracked = await client.trackEvent(
    { event: { name: "user_signed_up", externalUserId: "usr_42",
               properties: { plan: "trial", seats: 3 } } },
    options,
  );
  console.log(`tracked event ${tracked.eventId} (duplicate: ${tracked.duplicate})`);

  // No externalUserId and no anonymousId: the server refuses it, storing nothing.
  try {
    await client.trackEvent({ event: { name: "user_signed_up" } }, options);
    throw new Error("the invalid event was accepted");
  } catch (thrown) {
    const error = ConnectError.from(thrown);
    if (error.code !== Code.InvalidArgument) throw error;
    console.log(`rejected: ${Code[error.code]}: ${error.rawMessage}`);
    for (const violation of error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations)) {
      console.log(`field violation: ${violation.field}: ${violation.description}`);
    }
    for (const info of error.findDetails(ErrorInfoSchema)) {
      // The wire reason is the ErrorReason value's name (protoc-gen-es drops its prefix).
      const reason = ErrorReason[info.reason as keyof typeof ErrorReason];
      console.log(`reason: ${info.reason} (ErrorReason ${reason}, domain ${info.domain})`);
    }
  }
}

main(process.argv[2] ?? "127.0.0.1:50051", process.env.TRACKD_API_KEY ?? "").catch((error) => {
  console.error("track:", error instanceof Error ? error.message : error);
  process.exit(1);
});
