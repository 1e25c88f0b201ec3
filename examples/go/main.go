// Command track is a small Go client of trackd's gRPC API, built on the stubs that
// scripts/stubs writes to gen/go: it tracks an event, then sends an invalid one and reads
// the google.rpc.BadRequest field violation and the ErrorInfo reason from the status.
//
//	track [-target 127.0.0.1:50051]   (the API key in TRACKD_API_KEY)
//
// Build it offline from Debian's Go packages with examples/go/build (docs/other-languages.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	trackdv1 "trackd/gen/go/trackd/v1"
)

func main() {
	target := flag.String("target", "127.0.0.1:50051", "trackd's gRPC address")
	flag.Parse()
	if err := run(*target, os.Getenv("TRACKD_API_KEY")); err != nil {
		fmt.Fprintln(os.Stderr, "track:", err)
		os.Exit(1)
	}
}

func run(target, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, target, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		return err
	}
	defer conn.Close()
	client := trackdv1.NewTrackingServiceClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)

	properties, err := structpb.NewStruct(map[string]interface{}{"plan": "trial", "seats": 3})
	if err != nil {
		return err
	}
	tracked, err := client.TrackEvent(ctx, &trackdv1.TrackEventRequest{
		Event: &trackdv1.Event{
			Name: "user_signed_up", ExternalUserId: "usr_42", Properties: properties,
		},
	})
	if err != nil {
		return err
	}
	fmt.Printf("tracked event %s (duplicate: %t)\n", tracked.GetEventId(), tracked.GetDuplicate())

	// No external_user_id and no anonymous_id: the server refuses it, storing nothing.
	_, err = client.TrackEvent(ctx, &trackdv1.TrackEventRequest{
		Event: &trackdv1.Event{Name: "user_signed_up"},
	})
	if err == nil {
		return fmt.Errorf("the invalid event was accepted")
	}
	st := status.Convert(err)
	fmt.Printf("rejected: %s: %s\n", st.Code(), st.Message())
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.BadRequest:
			for _, violation := range d.GetFieldViolations() {
				fmt.Printf("field violation: %s: %s\n", violation.GetField(), violation.GetDescription())
			}
		case *errdetails.ErrorInfo:
			// The wire reason is the ErrorReason value's name without its prefix.
			reason := trackdv1.ErrorReason(trackdv1.ErrorReason_value["ERROR_REASON_"+d.GetReason()])
			fmt.Printf("reason: %s (ErrorReason %d, domain %s)\n", d.GetReason(), reason, d.GetDomain())
		}
	}
	return nil
}
