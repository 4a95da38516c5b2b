package hmacauth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/hmacauth"
)

// FuzzVerify holds priority-sync's request signature to its promise: a request is accepted
// only when the signature header is the HMAC-SHA256 (under one of the keys, recomputed here) of
// the timestamp header, ".", and exactly the body, and the timestamp is unix seconds inside the
// window. Every other outcome is a Rejection naming the header at fault.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_764_000_000, 0)
	keys := [][]byte{[]byte("current-key"), []byte("previous-key")}
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"incidentSysId":"0123456789abcdef0123456789abcdef","priority":"1"}`)
	f.Add(ts, hmacauth.Sign(keys[0], ts, body), body)
	f.Add(ts, hmacauth.Sign(keys[1], ts, body), body)
	f.Add(ts, strings.ToUpper(hmacauth.Sign(keys[0], ts, body)), body)
	f.Add(" "+ts+" ", hmacauth.Sign(keys[0], ts, body), body)
	f.Add(ts, hmacauth.Sign(keys[0], ts, body), append(body, '\n'))
	f.Add(ts, hmacauth.Sign([]byte("wrong"), ts, body), body)
	f.Add("0"+ts, hmacauth.Sign(keys[0], "0"+ts, body), body)
	f.Add(strconv.FormatInt(now.Add(-time.Hour).Unix(), 10), hmacauth.Sign(keys[0], strconv.FormatInt(now.Add(-time.Hour).Unix(), 10), body), body)
	f.Add("", "", []byte{})
	v := &hmacauth.Verifier{Keys: func(context.Context) ([][]byte, error) { return keys, nil }, Now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, timestamp, signature string, body []byte) {
		err := v.Verify(context.Background(), timestamp, signature, body)
		if err != nil {
			var r *hmacauth.Rejection
			if !errors.As(err, &r) || (r.Field != hmacauth.HeaderTimestamp && r.Field != hmacauth.HeaderSignature) {
				t.Fatalf("not a Rejection naming a header: %v", err)
			}
			return
		}
		ts, sig := strings.TrimSpace(timestamp), strings.TrimSpace(signature)
		secs, perr := strconv.ParseInt(ts, 10, 64)
		if perr != nil || strings.TrimLeft(ts, "0123456789") != "" || now.Sub(time.Unix(secs, 0)).Abs() > hmacauth.DefaultWindow {
			t.Fatalf("accepted timestamp %q", timestamp)
		}
		got, _ := hex.DecodeString(sig)
		for _, k := range keys {
			m := hmac.New(sha256.New, k)
			m.Write([]byte(ts + "."))
			m.Write(body)
			if hmac.Equal(got, m.Sum(nil)) {
				return
			}
		}
		t.Fatalf("accepted %q, which no key signs for %q and this body", signature, timestamp)
	})
}
