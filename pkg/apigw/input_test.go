package apigw

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/observe"
)

type sample struct {
	ConversationID Text      `json:"conversationId"`
	CustomerEmail  LooseText `json:"customerEmail"`
	HoldSeconds    LooseInt  `json:"holdSeconds"`
	Description    LooseText `json:"description"`
}

func TestDecodeInputWarnsAboutUnknownNamesAndRefusesTypos(t *testing.T) {
	var s sample
	ws, err := DecodeInput([]byte(`{"conversationId":"c1","newInputOfV2":"x","zzz":[1],"description":"d"}`), &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.ConversationID != "c1" || s.Description.Text != "d" {
		t.Fatalf("decoded %+v", s)
	}
	got := ws.Strings()
	if len(got) != 2 || got[0] != "newInputOfV2: not an input of this action; ignored" || !strings.HasPrefix(got[1], "zzz: ") {
		t.Fatalf("warnings %q", got)
	}
	for name, typo := range map[string]string{
		"ConversationId": "conversationId", "conversation_id": "conversationId", "customerEmial": "customerEmail",
		"customerEmai": "customerEmail", "holdSecond": "holdSeconds", "Description": "description",
	} {
		_, err := DecodeInput([]byte(`{"conversationId":"c1","`+name+`":"x"}`), &s)
		if err == nil || err.Code != "unknown_field" || err.Field != name || !strings.Contains(err.Message, "did you mean "+typo+"?") {
			t.Errorf("%s: %+v; want a 400 naming %s", name, err, typo)
		}
	}
	for _, body := range []string{``, `[]`, `"x"`, `{"conversationId":`, `{"conversationId":"c1"}}`, `{"conversationId":["c1"]}`} {
		if _, err := DecodeInput([]byte(body), &s); err == nil || err.Status != 400 {
			t.Errorf("%q: %+v; want a 400", body, err)
		}
	}
}

func TestLooseValuesNeverFailDecoding(t *testing.T) {
	var s sample
	ws, err := DecodeInput([]byte(`{"conversationId":"c1","customerEmail":{"a":1},"holdSeconds":"soon","description":["x"]}`), &s)
	if err != nil || len(ws) != 0 {
		t.Fatalf("%v %v", err, ws)
	}
	if s.CustomerEmail.Text != "" || s.CustomerEmail.Malformed != "an object" || s.Description.Malformed != "an array" {
		t.Fatalf("%+v", s)
	}
	if s.HoldSeconds.Set || s.HoldSeconds.Malformed == "" {
		t.Fatalf("holdSeconds %+v", s.HoldSeconds)
	}
	if _, err := DecodeInput([]byte(`{"holdSeconds":12.5}`), &s); err != nil || s.HoldSeconds.Malformed != "a number that is not whole" {
		t.Fatalf("%v %+v", err, s.HoldSeconds)
	}
	if _, err := DecodeInput([]byte(`{"holdSeconds":"245","customerEmail":" a@b.c "}`), &s); err != nil || !s.HoldSeconds.Set || s.HoldSeconds.Value != 245 || s.CustomerEmail.Text != "a@b.c" {
		t.Fatalf("%v %+v", err, s)
	}
	// They encode as Text and Int do, so payload hashes do not change.
	b, _ := json.Marshal(s)
	if string(b) != `{"conversationId":"c1","customerEmail":"a@b.c","holdSeconds":245,"description":""}` {
		t.Fatalf("%s", b)
	}
}

func TestWarningsAreCountedByInput(t *testing.T) {
	m := observe.NewMetrics("cxbridge", observe.D("Service", "cxbridge"))
	ctx := observe.WithMetrics(context.Background(), m)
	var ws Warnings
	ws.Add("occurredAt", "not a time")
	ws = append(ws, Warning{Field: "somethingElse", Problem: "ignored", unknown: true})
	ws.Report(ctx)
	var buf bytes.Buffer
	_ = m.Flush(&buf, time.Unix(0, 0))
	out := buf.String()
	if !strings.Contains(out, `"Field":"occurredAt"`) || !strings.Contains(out, `"Field":"unknown_input"`) || strings.Contains(out, "somethingElse") {
		t.Fatalf("%s", out)
	}
	if got := (Warnings{}).Strings(); got == nil || len(got) != 0 {
		t.Fatal("no warnings is an empty list, not null")
	}
}
