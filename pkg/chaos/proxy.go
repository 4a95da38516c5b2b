package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"
)

// hangFor bounds a hang: longer than any caller waits (API Gateway gives up after 29 s).
const hangFor = 60 * time.Second

// proxy stands in front of one external system's fake and injects faults into what the
// functions send it. A fault before commit is answered without forwarding: the system never
// saw the request. A fault after commit forwards the request, lets the fake apply it, throws
// the answer away and answers the fault (or nothing) instead: the write happened and the
// caller cannot know.
type proxy struct {
	system string
	target *url.URL // scheme and host of the fake
	// decide picks each request's fault: the run's plan, or a script in tests.
	decide func(key string, create bool) fault
	slow   *atomic.Bool // the plan's warm-up delay
	log    *journal
	// creates says whether a request makes a ticket (its process may then be killed).
	creates func(method, path string) bool
	// kill crashes the function that sent a create, once the create is applied.
	kill func(system string, markers []string) string

	srv    *http.Server
	ln     net.Listener
	client *http.Client
}

// newProxy starts a proxy for the fake at rawURL and returns it with the address that replaces
// rawURL (same path).
func newProxy(system, rawURL string, p *plan, log *journal) (*proxy, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("chaos: %s address %q: %w", system, rawURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	px := &proxy{
		system: system, target: &url.URL{Scheme: u.Scheme, Host: u.Host}, decide: p.decide, slow: &p.slow, log: log,
		creates: func(string, string) bool { return false },
		kill:    func(string, []string) string { return "" },
		ln:      ln, client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
	}
	px.srv = &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = px.srv.Serve(ln) }()
	front := *u
	front.Host = ln.Addr().String()
	return px, front.String(), nil
}

func (px *proxy) Close() { _ = px.srv.Close() }

func (px *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if px.slow.Load() {
		pause(r.Context(), time.Second)
	}
	body, _ := io.ReadAll(r.Body)
	markers := findMarkers(r.URL.RequestURI(), body)
	create := px.creates(r.Method, r.URL.Path) && len(markers) > 0 && isEscalation(markers[0])
	key := px.system + " " + r.Method + " " + r.URL.Path
	if len(markers) > 0 {
		key += " " + markers[0]
	}
	f := px.decide(key, create)
	ev := event{At: time.Now(), System: px.system, Method: r.Method, Path: r.URL.Path, Markers: markers, Fault: f}
	defer func() { px.log.add(ev) }()

	if f.kind == pass {
		resp, err := px.forward(r.Context(), r, body)
		if err != nil {
			ev.Upstream = -1
			panic(http.ErrAbortHandler)
		}
		ev.Upstream = resp.status
		resp.write(w)
		return
	}
	if f.afterCommit {
		// The system gets the request whatever the caller does meanwhile.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		resp, err := px.forward(ctx, r, body)
		cancel()
		ev.Upstream = -1
		if err == nil {
			ev.Upstream = resp.status
		}
		if f.kind == kill {
			ev.Killed = px.kill(px.system, markers)
		}
	}
	switch f.kind {
	case serverError, rateLimited:
		px.writeFault(w, f)
	default: // hang, and kill: the caller is gone or goes without an answer
		t := time.NewTimer(hangFor)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		panic(http.ErrAbortHandler) // close the connection without an answer
	}
}

type upstream struct {
	status int
	header http.Header
	body   []byte
}

func (u upstream) write(w http.ResponseWriter) {
	for k, vs := range u.header {
		if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" {
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(u.status)
	_, _ = w.Write(u.body)
}

func (px *proxy) forward(ctx context.Context, r *http.Request, body []byte) (upstream, error) {
	u := *px.target
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return upstream{}, err
	}
	for k, vs := range r.Header {
		if k == "Connection" || k == "Keep-Alive" || k == "Te" || k == "Upgrade" || k == "Proxy-Connection" {
			continue
		}
		req.Header[k] = vs
	}
	resp, err := px.client.Do(req)
	if err != nil {
		return upstream{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return upstream{}, err
	}
	return upstream{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// writeFault answers a fault in the shape the system (or the load balancer in front of it)
// uses: each system's JSON error body, an HTML page for 502 and 504, Retry-After when set.
func (px *proxy) writeFault(w http.ResponseWriter, f fault) {
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
	}
	text := http.StatusText(f.status)
	if f.status == http.StatusBadGateway || f.status == http.StatusGatewayTimeout {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.status)
		_, _ = fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><h1>%d %s</h1></body></html>\n", f.status, text, f.status, text)
		return
	}
	var body string
	switch px.system {
	case "jira":
		if f.status == http.StatusTooManyRequests {
			w.Header().Set("RateLimit-Reason", "jira-burst-based")
		}
		body = fmt.Sprintf(`{"errorMessage":%q,"i18nErrorMessage":{"i18nKey":"chaos.fault","parameters":[]}}`, text)
	case "servicenow":
		body = fmt.Sprintf(`{"error":{"message":%q,"detail":null},"status":"failure"}`, text)
	default:
		body = fmt.Sprintf(`{"errors":[{"code":%d,"description":%q,"parameter":null}]}`, f.status, text)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, body)
}

// Markers tie a request to what the suite sent: an escalation's conversation id, an
// escalation id (its ticket marker), an end user's tag.
var markerRE = regexp.MustCompile(`chaos-[g-pm]+-e[g-p]+|cxb-[0-9a-f]{24}|chaos-u[0-9]{4}`)

func findMarkers(uri string, body []byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range [][]byte{[]byte(uri), body} {
		if u, err := url.QueryUnescape(string(s)); err == nil {
			s = []byte(u)
		}
		for _, m := range markerRE.FindAll(s, -1) {
			if !seen[string(m)] {
				seen[string(m)] = true
				out = append(out, string(m))
			}
		}
	}
	return out
}

// isEscalation says whether a marker is an escalation's conversation id.
func isEscalation(m string) bool { return escalationRE.MatchString(m) }

var escalationRE = regexp.MustCompile(`^chaos-[g-pm]+-e[g-p]+$`)

// event is one request a proxy saw.
type event struct {
	At       time.Time
	System   string
	Method   string
	Path     string
	Markers  []string
	Fault    fault
	Upstream int    // the fake's status; 0 when not forwarded, -1 when forwarding failed
	Killed   string // what a kill fault crashed
}

func (e event) String() string {
	s := fmt.Sprintf("%s %s %s", e.System, e.Method, e.Path)
	switch e.Fault.kind {
	case pass:
		s += fmt.Sprintf(" -> %d", e.Upstream)
	case serverError, rateLimited:
		s += fmt.Sprintf(" -> %d injected", e.Fault.status)
		if e.Fault.retryAfter > 0 {
			s += fmt.Sprintf(" (Retry-After %d)", e.Fault.retryAfter)
		}
	case hang:
		s += " -> hang"
	case kill:
		s += " -> killed " + e.Killed
	}
	if e.Fault.kind != pass {
		if e.Fault.afterCommit {
			s += fmt.Sprintf(", after the system applied it (%d)", e.Upstream)
		} else {
			s += ", before the system saw it"
		}
	}
	return s
}

// journal keeps every request the proxies saw.
type journal struct{ recorder[event] }

func (j *journal) all() []event { return j.snapshot() }
