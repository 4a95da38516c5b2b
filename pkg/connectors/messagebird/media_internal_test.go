package messagebird

import (
	"net/url"
	"strings"
	"testing"
)

func TestMediaAuthorisedHosts(t *testing.T) {
	c := New("", nil, "", nil)
	custom := New("http://127.0.0.1:4010/v1", nil, "", nil, WithMediaHosts("files.example.com:8443", "MEDIA.example.com"))
	tests := []struct {
		c    *Client
		url  string
		want bool
	}{
		{c, "https://media.messagebird.com/v1/media/ab397184-a03a-42de-a2c7-69abc4a0ceaa", true},
		{c, "https://MEDIA.messagebird.com:443/v1/media/x", true},
		{c, "https://messaging.messagebird.com/v1/files/x", true},
		{c, "https://conversations.messagebird.com/v1/media/x", true}, // the API host itself
		{c, "http://media.messagebird.com/v1/media/x", false},         // never over plain http
		{c, "https://media.messagebird.com:8443/x", false},            // another port
		{c, "https://media.messagebird.com.evil.example/x", false},
		{c, "https://evilmedia.messagebird.com.attacker.net/x", false},
		{c, "https://user:pw@media.messagebird.com/x", false},
		{c, "https://scontent.whatsapp.net/x", false},
		{custom, "http://127.0.0.1:4010/v1/media/x", true}, // same scheme and host as the API
		{custom, "http://127.0.0.1:4011/v1/media/x", false},
		{custom, "https://media.messagebird.com/x", false}, // replaced by WithMediaHosts
		{custom, "https://files.example.com:8443/x", true},
		{custom, "https://files.example.com/x", false},
		{custom, "https://media.example.com/x", true},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.url)
		if got := tt.c.mediaAuthorised(u); got != tt.want {
			t.Errorf("mediaAuthorised(%s) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestSanitizeFilename(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":          "report.pdf",
		`..\..\windows\x.exe`: "x.exe",
		"/etc/passwd":         "passwd",
		"a\r\nb.txt":          "ab.txt",
		"..":                  "",
		`"quoted".png`:        "quoted.png",
		"":                    "",
	} {
		if got := sanitizeFilename(in); got != want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", in, got, want)
		}
	}
	long := sanitizeFilename(strings.Repeat("a", 300) + ".jpeg")
	if len(long) != 120 || long[len(long)-5:] != ".jpeg" {
		t.Errorf("long name %q (%d)", long, len(long))
	}
}
