package runtimeapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Runtime API and Extensions API headers, as aws-lambda-go v1.55.1 reads and sends them.
const (
	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
	// aws-lambda-go streams a response body and, when reading it fails midway, reports the
	// failure in these trailers instead of posting to /error.
	trailerErrorType     = "Lambda-Runtime-Function-Error-Type"
	trailerErrorBody     = "Lambda-Runtime-Function-Error-Body"
	headerExtensionID    = "Lambda-Extension-Identifier"
	headerExtensionName  = "Lambda-Extension-Name"
	contentTypeJSON      = "application/json"
	runtimeAPIPathPrefix = "/2018-06-01/runtime"
)

func (env *environment) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+runtimeAPIPathPrefix+"/invocation/next", env.next)
	mux.HandleFunc("POST "+runtimeAPIPathPrefix+"/invocation/{id}/response", env.answer(false))
	mux.HandleFunc("POST "+runtimeAPIPathPrefix+"/invocation/{id}/error", env.answer(true))
	mux.HandleFunc("POST "+runtimeAPIPathPrefix+"/init/error", env.initError)
	mux.HandleFunc("POST /2020-01-01/extension/register", env.registerExtension)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", env.extensionNext)
	return mux
}

// next blocks until an invocation is handed to this process, then returns its event with the
// invocation headers. The first call marks the end of init.
func (env *environment) next(w http.ResponseWriter, r *http.Request) {
	p := env.current()
	if p == nil {
		renderError(w, http.StatusForbidden, "InvalidStateTransition", "no runtime is running")
		return
	}
	p.readyOnce.Do(func() {
		p.initDur = time.Since(p.start)
		close(p.ready)
	})
	var inv *invocation
	select {
	case inv = <-p.work:
	case <-r.Context().Done():
		return
	case <-p.exited:
		return
	}
	inv.start = time.Now()
	inv.deadline = inv.start.Add(env.e.fn.Timeout)
	p.mu.Lock()
	p.cur = inv
	p.mu.Unlock()
	close(inv.delivered)
	// Logged before the runtime sees the event, so it precedes the function's own lines.
	env.e.logs.linef("START RequestId: %s Version: $LATEST", inv.id)

	h := w.Header()
	h.Set(headerRequestID, inv.id)
	h.Set(headerDeadline, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set(headerFunctionARN, env.e.arn)
	h.Set(headerTraceID, inv.traceID)
	h.Set("Content-Type", contentTypeJSON)
	_, _ = w.Write(inv.payload)
}

// answer handles /invocation/{id}/response and /invocation/{id}/error. aws-lambda-go sends
// the error document {"errorMessage","errorType","stackTrace"} without the
// Lambda-Runtime-Function-Error-Type header; either way Lambda passes the body to the
// invoker unchanged, and so does this.
func (env *environment) answer(failed bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			renderError(w, http.StatusBadRequest, "InvalidRequest", "reading body: "+err.Error())
			return
		}
		end := time.Now()
		if !failed && r.Trailer.Get(trailerErrorType) != "" {
			failed = true
			body, err = base64.StdEncoding.DecodeString(r.Trailer.Get(trailerErrorBody))
			if err != nil || len(body) == 0 {
				body, _ = json.Marshal(map[string]string{
					"errorType":    r.Trailer.Get(trailerErrorType),
					"errorMessage": "the function's response stream failed",
				})
			}
		}
		p := env.current()
		if p == nil {
			renderError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
			return
		}
		p.mu.Lock()
		inv := p.cur
		if inv == nil || inv.id != r.PathValue("id") {
			p.mu.Unlock()
			renderError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
			return
		}
		p.cur = nil
		p.mu.Unlock()
		if end.After(inv.deadline) {
			// Past the deadline Lambda has already ended the invocation; on a busy machine the
			// timer that ends it here may fire a little late, and must still win.
			renderError(w, http.StatusForbidden, "InvalidStateTransition", "invocation timed out")
			return
		}
		if !inv.finish(outcome{payload: body, failed: failed, end: end}) {
			// The invocation already timed out; the process is being killed.
			renderError(w, http.StatusForbidden, "InvalidStateTransition", "invocation already completed")
			return
		}
		w.Header().Set("Content-Type", contentTypeJSON)
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"OK"}`)
	}
}

// initError records a runtime's report that it cannot initialise. The invoker receives the
// posted body, as from Lambda; the invocation that is waiting for init then kills the process.
func (env *environment) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p := env.current()
	if p == nil || isClosed(p.ready) {
		renderError(w, http.StatusForbidden, "InvalidStateTransition", "init/error is only valid before the first /next")
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		errorType := r.Header.Get(headerErrorType)
		if errorType == "" {
			errorType = "Runtime.Unknown"
		}
		body, _ = json.Marshal(map[string]string{"errorType": errorType, "errorMessage": "init failed"})
	}
	p.initFailOnce.Do(func() {
		p.initErrBody = body
		close(p.initFailed)
	})
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

// registerExtension is the part of the Extensions API that aws-lambda-go's WithEnableSIGTERM
// uses: it registers an internal extension for no events, only to get SIGTERM at shutdown.
func (env *environment) registerExtension(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.Header.Get(headerExtensionName) == "" {
		renderError(w, http.StatusForbidden, "Extension.InvalidExtensionName", "Empty extension name")
		return
	}
	if p := env.current(); p != nil {
		p.extension.Store(true)
	}
	w.Header().Set(headerExtensionID, newRequestID())
	w.Header().Set("Content-Type", contentTypeJSON)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"functionName":    env.e.fn.Name,
		"functionVersion": "$LATEST",
		"handler":         "bootstrap",
	})
}

// extensionNext never answers: an extension registered for no events gets none, and
// aws-lambda-go parks a goroutine here on purpose. The request ends with the process.
func (env *environment) extensionNext(w http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
}

// renderError writes the error shape of the Runtime API.
func renderError(w http.ResponseWriter, status int, errorType, message string) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorType": errorType, "errorMessage": message})
}

// logSink serialises lines from every process of a function onto one writer.
type logSink struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (s *logSink) line(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := make([]byte, 0, len(s.prefix)+len(b)+1)
	buf = append(append(append(buf, s.prefix...), b...), '\n')
	_, _ = s.w.Write(buf)
}

func (s *logSink) linef(format string, args ...any) {
	if s != nil {
		s.line(fmt.Appendf(nil, format, args...))
	}
}

// lineWriter splits a process's output into lines for the sink. exec calls Write from one
// goroutine at a time and flush runs after Wait, so it needs no lock.
type lineWriter struct {
	sink *logSink
	buf  []byte
}

// maxLine bounds the buffer for output that never ends a line.
const maxLine = 64 << 10

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	rest := lw.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		lw.sink.line(bytes.TrimSuffix(rest[:i], []byte("\r")))
		rest = rest[i+1:]
	}
	lw.buf = append(lw.buf[:0], rest...)
	if len(lw.buf) >= maxLine {
		lw.flush()
	}
	return len(p), nil
}

func (lw *lineWriter) flush() {
	if len(lw.buf) > 0 {
		lw.sink.line(lw.buf)
		lw.buf = lw.buf[:0]
	}
}
