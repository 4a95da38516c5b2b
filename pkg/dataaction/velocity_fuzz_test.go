package dataaction_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/dataaction"
)

// FuzzRender: whatever an input holds, the shipped idioms keep the request well formed: the
// value rendered with $esc.jsonString inside a JSON string decodes back to the value, and
// with $esc.url inside a query string parses back to it. Any template renders or fails without
// a panic, and a template without "$" renders as itself.
func FuzzRender(f *testing.F) {
	for _, s := range []struct{ tmpl, value string }{
		{`{"ani":"$esc.jsonString(${input.x})"}`, `"},"injected":{"a":"`},
		{`{"ani":"$!esc.jsonString($!{input.missing})"}`, "line\nbreak"},
		{`/lookup?ani=$esc.url(${input.x})&k=${credentials.key}`, "a&b=c d"},
		{`$!{input.x} ${input.x} $input.x $!input.x`, "\u2028\u0000\xff"},
		{`{"n": ${input.x}}`, "12"},
		{`$foo.bar() #if($x) $ {input.x}`, "x"},
		{`no directives at all`, ""},
	} {
		f.Add(s.tmpl, s.value)
	}
	creds := map[string]string{"key": "k"}
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		in := map[string]any{"x": value}
		want := string([]rune(value)) // JSON carries invalid UTF-8 as U+FFFD

		out, err := dataaction.Render(`{"v":"$esc.jsonString(${input.x})"}`, in, creds)
		var got struct{ V string }
		if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.V != want {
			t.Fatalf("jsonString of %q: %s (%v)", value, out, err)
		}
		out, err = dataaction.Render(`/x?v=$esc.url(${input.x})&k=1`, in, creds)
		u, perr := url.Parse(out)
		if err != nil || perr != nil || u.Query().Get("v") != value || u.Query().Get("k") != "1" {
			t.Fatalf("url of %q: %s (%v %v)", value, out, err, perr)
		}

		out, err = dataaction.Render(tmpl, in, creds)
		if err == nil && !strings.Contains(tmpl, "$") && out != tmpl {
			t.Fatalf("a template without directives changed: %q -> %q", tmpl, out)
		}
	})
}
