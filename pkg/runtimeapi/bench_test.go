package runtimeapi_test

import (
	"context"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
)

// BenchmarkInvokeWarm measures one invocation of a warm environment: event to the runtime's
// /next, handler, response back to the invoker.
func BenchmarkInvokeWarm(b *testing.B) {
	em, err := runtimeapi.Start(runtimeapi.Function{Name: "echo", Bootstrap: echoBootstrap})
	if err != nil {
		b.Fatal(err)
	}
	defer em.Close()
	ctx := context.Background()
	payload := []byte(`{"op":"echo"}`)
	if _, err := em.Invoke(ctx, payload); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if res, err := em.Invoke(ctx, payload); err != nil || res.FunctionError != "" {
			b.Fatal(err, string(res.Payload))
		}
	}
}

// BenchmarkInvokeCold measures a first invocation including the process start and init, plus
// Close (SIGTERM and reaping).
func BenchmarkInvokeCold(b *testing.B) {
	ctx := context.Background()
	payload := []byte(`{"op":"echo"}`)
	for b.Loop() {
		em, err := runtimeapi.Start(runtimeapi.Function{Name: "echo", Bootstrap: echoBootstrap})
		if err != nil {
			b.Fatal(err)
		}
		if res, err := em.Invoke(ctx, payload); err != nil || res.FunctionError != "" {
			b.Fatal(err, string(res.Payload))
		}
		em.Close()
	}
}
