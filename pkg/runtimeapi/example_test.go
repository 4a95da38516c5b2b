package runtimeapi_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
)

// A test or the local stack builds a function once, then invokes the real binary.
func Example() {
	ctx := context.Background()
	bootstrap := "/tmp/cxbridge/telemetry-tier/bootstrap"
	if err := runtimeapi.BuildBootstrap(ctx, ".", "functions/telemetry-tier", bootstrap); err != nil {
		log.Fatal(err)
	}
	em, err := runtimeapi.Start(runtimeapi.Function{
		Name:      "telemetry-tier",
		Bootstrap: bootstrap,
		Env:       map[string]string{"TELEMETRY_URL": "http://127.0.0.1:8081"},
		Timeout:   3 * time.Second,
		Logs:      os.Stderr,
		LogPrefix: "telemetry-tier| ",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer em.Close()

	res, err := em.Invoke(ctx, []byte(`{"conversationId":"c-1"}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.FunctionError, string(res.Payload))
	// em.Handler() serves the same invocation at POST /2015-03-31/functions/function/invocations.
}
