// Package messagebirdtest is a wire-level fake of the classic MessageBird Conversations API
// (reference/api-contracts.md section 4) for tests and the local stack. It listens on
// 127.0.0.1; URL() is MESSAGEBIRD_BASE_URL.
//
// # Contract
//
// Every /v1 request needs "Authorization: AccessKey <key>"; otherwise 401
// {"errors":[{"code":2,"description":"Request not allowed (incorrect access_key)","parameter":"access_key"}]}
// (the body MessageBird's Go SDK test server uses; the Conversations docs also show code 1001,
// "You are requesting with an invalid credential."). Errors are {"errors":[{"code","description",
// "parameter"}]}: 404 code 20 for unknown ids, 422 code 9 (missing) or 10 (invalid) for bad
// parameters. The 404/422 codes follow MessageBird's classic REST API; for the Conversations API
// they are UNCONFIRMED, as are the 429 body and headers.
//
//	POST  /v1/conversations/{id}/messages  {"type","content","channelId"}  201 message
//	GET   /v1/conversations/{id}/messages  200 {"offset","limit","count","totalCount","items"} (oldest first)
//	GET   /v1/conversations/{id}           200 conversation (contact and channels embedded)
//	PATCH /v1/conversations/{id}           {"status":"archived"|"active"}  200 conversation
//	GET   /v1/messages/{id}                200 message
//	POST  /v1/webhooks, GET /v1/webhooks   register / list the webhook (url is also the public URL)
//	GET   /v1/media/{id}                   media added with AddMedia (AccessKey unless Public)
//
// Behaviour:
//   - One active conversation per contact. An inbound message (Receive) goes to the contact's
//     active conversation or opens a new one, so after Archive the next inbound message gets a
//     NEW conversation id. Replying to an archived conversation also opens a new one (the
//     reference's "a new conversation is created"); the answer's conversationId says which.
//   - WhatsApp customer-service window: a non-template message to a contact whose last inbound
//     WhatsApp message is 24 h or more old (or who never wrote) is refused with code 470, in the
//     shape WindowMode selects (default: 201 with the message in status "rejected" and
//     error{code 470}, as MessageBird's "Troubleshooting WhatsApp" page shows). Templates
//     (type "hsm") are always accepted; SMS has no window.
//   - Webhooks: SetWebhook registers the URL the fake POSTs to and the public URL it signs
//     (they differ behind API Gateway). Deliveries carry MessageBird-Signature-JWT, an HS256
//     JWT with iss MessageBird, iat, nbf, exp (60 s), a unique jti, url_hash and payload_hash;
//     SignOptions forges, expires or tampers them. Every delivery and the receiver's status are
//     recorded.
//   - Failure injection per path prefix (status, delay/hang, reset, count; before the effect or
//     after it: the message is sent and the answer lost, see Failure), an optional rate limit
//     (429 + Retry-After), and a record of every request, sent message, archive call and media
//     download.
package messagebirdtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// Fixed channel ids of the two default channels.
const (
	WhatsAppChannelID = "9f3c1a2b4d5e4f60a1b2c3d4e5f60718"
	SMSChannelID      = "1b2c3d4e5f60718293a4b5c6d7e8f901"
	WhatsAppNumber    = "+31970102030405"
	SMSNumber         = "+3197010203040"
)

// WindowMode selects how a free-form WhatsApp message outside the 24 h window is refused.
type WindowMode int

const (
	// WindowRejectInResponse answers 201 with the message in status "rejected" and
	// error{code:470} (the default; the shape MessageBird documents).
	WindowRejectInResponse WindowMode = iota
	// WindowRejectAsync answers 201 "accepted", then marks the message "failed" with error 470
	// and posts message.updated (if a webhook is registered).
	WindowRejectAsync
	// WindowRejectHTTP answers 422 {"errors":[{"code":470,...}]} and stores nothing.
	WindowRejectHTTP
)

// WindowDescription is the 470 description MessageBird documents.
const WindowDescription = "Failed to send message because you are outside the support window for freeform messages to this user. Please use a valid message template."

// Failure is an injected answer for requests whose path starts with a prefix.
//
// By default it strikes before the request takes effect. With AfterEffect the request is
// processed first (the message is sent to the end user) and only its answer is lost: replaced
// by Status, held back for Delay (a hang, ending when the client gives up), or the connection
// Reset; with neither Status nor Reset the real answer arrives after Delay.
type Failure struct {
	Status      int
	Code        int    // errors[].code; default by status
	Description string // errors[].description; default the status text
	RetryAfter  int    // seconds, sent as Retry-After
	Delay       time.Duration
	Times       int // how many requests it applies to; 0 = forever
	// AfterEffect applies the request before the failure: the answer is lost, not the request.
	AfterEffect bool
	// Reset closes the connection without an answer (after Delay) instead of answering.
	Reset bool
	// Method, when set, limits the failure to requests with this method (POST: the write, not
	// the read before it).
	Method string
}

// Received is a request the fake got. The Authorization header is not kept.
type Received struct {
	Method     string
	Path       string
	Query      string
	Body       json.RawMessage
	Authorized bool // carried the right AccessKey
}

// MediaDownload is one GET of a media file.
type MediaDownload struct {
	ID            string
	Authorization bool // an Authorization header arrived (of any value)
	Authorized    bool // it was the right AccessKey
	Status        int
}

// Server is the fake.
type Server struct {
	srv *httptest.Server
	mux *http.ServeMux

	AccessKey  string
	SigningKey string
	// Now is the fake's clock for message times and the 24 h window; default time.Now. JWT
	// times use SignOptions.Now (default time.Now), since the receiver checks them against its
	// own clock.
	Now func() time.Time
	// Window selects how out-of-window WhatsApp messages are refused.
	Window WindowMode
	// EchoSent posts message.created (direction "sent") for every message sent through the
	// API, asynchronously, as MessageBird does for outbound messages.
	EchoSent bool
	// WebhookTimeout bounds each webhook POST; default 10 s.
	WebhookTimeout time.Duration

	mu            sync.Mutex
	channels      map[string]Channel
	contacts      map[string]*contact
	byMSISDN      map[string]string
	conversations map[string]*conversation
	convOrder     []string
	messages      map[string]*Message
	media         map[string]MediaFile
	webhook       *Webhook
	received      []Received
	archives      []string
	downloads     []MediaDownload
	deliveries    []Delivery
	failures      *fakehttp.Failures[Failure]
	limit         fakehttp.Window
	async         sync.WaitGroup
	keys          signerKeys
}

// New starts the fake on 127.0.0.1 with an access key (REST API) and a signing key (webhooks).
// It has a WhatsApp and an SMS channel. Close it when done.
func New(accessKey, signingKey string) *Server {
	s := &Server{
		AccessKey: accessKey, SigningKey: signingKey,
		mux:           http.NewServeMux(),
		channels:      map[string]Channel{},
		contacts:      map[string]*contact{},
		byMSISDN:      map[string]string{},
		conversations: map[string]*conversation{},
		messages:      map[string]*Message{},
		media:         map[string]MediaFile{},
		failures:      fakehttp.NewFailures(func(f *Failure) *int { return &f.Times }),
	}
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s.channels[WhatsAppChannelID] = Channel{ID: WhatsAppChannelID, Name: "WhatsApp " + WhatsAppNumber, PlatformID: "whatsapp", Status: "active", CreatedDatetime: created, UpdatedDatetime: created, number: WhatsAppNumber}
	s.channels[SMSChannelID] = Channel{ID: SMSChannelID, Name: "SMS " + SMSNumber, PlatformID: "sms", Status: "active", CreatedDatetime: created, UpdatedDatetime: created, number: SMSNumber}
	s.routes()
	s.srv = fakehttp.Start("messagebirdtest", http.HandlerFunc(s.serve))
	return s
}

// URL is MESSAGEBIRD_BASE_URL (the server root plus /v1).
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Host is the server's host:port.
func (s *Server) Host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// Close stops the server, ending hung answers, and waits for asynchronous webhook deliveries.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.async.Wait()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Fail injects failures for paths starting with prefix (e.g. "/v1/conversations"), in order.
func (s *Server) Fail(prefix string, f ...Failure) { s.failures.Add(prefix, f...) }

// ClearFailures removes every injected failure.
func (s *Server) ClearFailures() { s.failures.Clear() }

// RateLimit allows n API requests per window; more get 429 with Retry-After. n = 0 turns it off.
func (s *Server) RateLimit(n int, window time.Duration) { s.limit.Set(n, window, time.Now()) }

// Received returns the requests received so far under a path prefix ("" for all).
func (s *Server) Received(prefix string) []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Received
	for _, r := range s.received {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// Archives returns the conversation ids archived through the API, in order.
func (s *Server) Archives() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.archives...)
}

// MediaDownloads returns every media GET.
func (s *Server) MediaDownloads() []MediaDownload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]MediaDownload(nil), s.downloads...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		writeError(w, http.StatusNotFound, 20, "Not found", "")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	authorized := r.Header.Get("Authorization") == "AccessKey "+s.AccessKey && s.AccessKey != ""
	s.mu.Lock()
	s.received = append(s.received, Received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: json.RawMessage(body), Authorized: authorized})
	s.mu.Unlock()

	process := func(w http.ResponseWriter, r *http.Request) {
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.process(w, r, authorized)
	}
	f, ok := s.failures.TakeFor(r.URL.Path, func(f *Failure) bool { return f.Method == "" || f.Method == r.Method })
	switch {
	case !ok:
		process(w, r)
	case f.AfterEffect:
		var fail func(http.ResponseWriter)
		if f.Status != 0 {
			fail = func(w http.ResponseWriter) { writeFailure(w, f) }
		}
		fakehttp.Lose(w, r, http.HandlerFunc(process), f.Delay, f.Reset, fail)
	case !fakehttp.Wait(r, f.Delay):
	case f.Reset:
		fakehttp.Reset(w)
	case f.Status != 0:
		writeFailure(w, f)
	default:
		process(w, r)
	}
}

// process serves a request that no injected failure stopped.
func (s *Server) process(w http.ResponseWriter, r *http.Request, authorized bool) {
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/media/"); ok && r.Method == http.MethodGet {
		s.serveMedia(w, r, id, authorized)
		return
	}
	if !authorized {
		writeError(w, http.StatusUnauthorized, 2, "Request not allowed (incorrect access_key)", "access_key")
		return
	}
	if wait, limited := s.rateLimited(); limited {
		w.Header().Set("Retry-After", strconv.Itoa(wait))
		writeError(w, http.StatusTooManyRequests, 429, "Too many requests", "")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func writeFailure(w http.ResponseWriter, f Failure) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	code, desc := f.Code, f.Description
	if code == 0 {
		code = codeFor(f.Status)
	}
	if desc == "" {
		desc = http.StatusText(f.Status)
	}
	writeError(w, f.Status, code, desc, "")
}

func (s *Server) rateLimited() (int, bool) {
	allowed, _, _, reset := s.limit.Hit(time.Now())
	if allowed {
		return 0, false
	}
	return int(time.Until(reset).Seconds()) + 1, true
}

func codeFor(status int) int {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return 2
	case http.StatusNotFound:
		return 20
	case http.StatusTooManyRequests:
		return 429
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		return 21
	default:
		return 99
	}
}

// writeError writes a MessageBird error body.
func writeError(w http.ResponseWriter, status, code int, description, parameter string) {
	var p any
	if parameter != "" {
		p = parameter
	}
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"code": code, "description": description, "parameter": p}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ctxTimeout is a small helper for webhook POSTs.
func (s *Server) ctxTimeout() (context.Context, context.CancelFunc) {
	d := s.WebhookTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return context.WithTimeout(context.Background(), d)
}
