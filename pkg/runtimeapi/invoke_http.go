package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// maxPayload is Lambda's limit for a synchronous invocation's request.
const maxPayload = 6 << 20

// Handler serves the Invoke API path that RIE and `sam local start-lambda` expose:
// POST /2015-03-31/functions/{name}/invocations, where name is "function" (RIE's fixed name),
// the function's name or its ARN. The answer is 200 with the function's payload; a function
// failure adds X-Amz-Function-Error: Unhandled, as Lambda does. Service errors use the Lambda
// API's {"Type","message"} shape with X-Amzn-ErrorType; a throttled invocation is 429
// TooManyRequestsException.
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", e.serveInvoke)
	return mux
}

func (e *Emulator) serveInvoke(w http.ResponseWriter, r *http.Request) {
	if name := r.PathValue("name"); name != "function" && name != e.fn.Name && name != e.arn {
		serviceError(w, http.StatusNotFound, "ResourceNotFoundException", "User", "Function not found: "+name)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		serviceError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "User",
			"Request must be smaller than 6291456 bytes for the InvokeFunction operation")
		return
	}
	res, err := e.invoke(r.Context(), body, r.Header.Get("X-Amzn-Trace-Id"))
	switch {
	case err == nil:
	case errors.Is(err, ErrThrottled):
		w.Header().Set("Content-Type", contentTypeJSON)
		w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(map[string]string{"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded."})
		return
	case errors.Is(err, ErrInvalidPayload):
		serviceError(w, http.StatusBadRequest, "InvalidRequestContentException", "User", "Could not parse request body into json")
		return
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return // the caller has gone
	case errors.Is(err, ErrClosed):
		serviceError(w, http.StatusServiceUnavailable, "ServiceException", "Service", err.Error())
		return
	default:
		serviceError(w, http.StatusBadGateway, "ServiceException", "Service", err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentTypeJSON)
	h.Set("X-Amz-Executed-Version", "$LATEST")
	h.Set("X-Amzn-Requestid", res.RequestID)
	if res.FunctionError != "" {
		h.Set("X-Amz-Function-Error", res.FunctionError)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
}

func serviceError(w http.ResponseWriter, status int, code, kind, message string) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Type": kind, "message": message})
}
