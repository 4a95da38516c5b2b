// Package cfnstacktest is a wire-level fake of CloudFormation's DescribeStacks, for tests of the
// operator tools. It speaks the AWS query protocol as CloudFormation does: a form-encoded POST
// (Action=DescribeStacks, Version=2010-05-15, StackName) signed with SigV4, answered with the
// XML DescribeStacksResponse, or a 400 ErrorResponse with code ValidationError for a stack that
// does not exist. Point the SDK at it with AWS_ENDPOINT_URL_CLOUDFORMATION.
package cfnstacktest

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// Stack is a fake stack.
type Stack struct {
	Name       string
	Status     string // default UPDATE_COMPLETE
	Outputs    map[string]string
	Parameters map[string]string
}

// Server is the fake.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	stacks   map[string]Stack
	requests []url.Values
}

// New starts the fake on 127.0.0.1 with stacks. Close it when done.
func New(stacks ...Stack) *Server {
	s := &Server{stacks: map[string]Stack{}}
	for _, st := range stacks {
		s.Put(st)
	}
	s.srv = fakehttp.Start("cfnstacktest", http.HandlerFunc(s.serve))
	return s
}

// URL is the endpoint (AWS_ENDPOINT_URL_CLOUDFORMATION).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Put adds or replaces a stack.
func (s *Server) Put(st Stack) {
	if st.Status == "" {
		st.Status = "UPDATE_COMPLETE"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stacks[st.Name] = st
}

// Requests returns the form of every request received.
func (s *Server) Requests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.requests...)
}

const ns = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

type output struct {
	OutputKey   string
	OutputValue string
}

type parameter struct {
	ParameterKey   string
	ParameterValue string
}

type stackXML struct {
	StackName    string
	StackId      string
	StackStatus  string
	CreationTime string
	Outputs      []output    `xml:"Outputs>member"`
	Parameters   []parameter `xml:"Parameters>member"`
}

type describeResponse struct {
	XMLName   xml.Name   `xml:"DescribeStacksResponse"`
	Xmlns     string     `xml:"xmlns,attr"`
	Stacks    []stackXML `xml:"DescribeStacksResult>Stacks>member"`
	RequestID string     `xml:"ResponseMetadata>RequestId"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		s.fail(w, http.StatusBadRequest, "InvalidAction", "want a form-encoded POST")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		s.fail(w, http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, r.PostForm)
	s.mu.Unlock()
	if r.PostForm.Get("Action") != "DescribeStacks" || r.PostForm.Get("Version") != "2010-05-15" {
		s.fail(w, http.StatusBadRequest, "InvalidAction", "The action or operation requested is invalid.")
		return
	}
	name := r.PostForm.Get("StackName")
	s.mu.Lock()
	st, ok := s.stacks[name]
	var all []Stack
	if name == "" {
		for _, x := range s.stacks {
			all = append(all, x)
		}
	}
	s.mu.Unlock()
	if name != "" && !ok {
		s.fail(w, http.StatusBadRequest, "ValidationError", "Stack with id "+name+" does not exist")
		return
	}
	if name != "" {
		all = []Stack{st}
	}
	resp := describeResponse{Xmlns: ns, RequestID: "f1a2b3c4-0000-4000-8000-000000000001"}
	for _, x := range all {
		sx := stackXML{StackName: x.Name, StackStatus: x.Status, CreationTime: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC).Format(time.RFC3339),
			StackId: "arn:aws:cloudformation:us-east-1:000000000000:stack/" + x.Name + "/2d6c1a40-0000-4000-8000-000000000001"}
		for k, v := range x.Outputs {
			sx.Outputs = append(sx.Outputs, output{k, v})
		}
		for k, v := range x.Parameters {
			sx.Parameters = append(sx.Parameters, parameter{k, v})
		}
		resp.Stacks = append(resp.Stacks, sx)
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(resp)
}

func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	_ = xml.NewEncoder(w).Encode(errorResponse{Xmlns: ns, Type: typ, Code: code, Message: msg, RequestID: "f1a2b3c4-0000-4000-8000-000000000002"})
}
