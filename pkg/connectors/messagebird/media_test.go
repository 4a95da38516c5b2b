package messagebird_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

func TestDownloadMedia(t *testing.T) {
	e := setup(t)
	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte{1}, 5000)...)
	url := e.fake.AddMedia(messagebirdtest.MediaFile{ContentType: "image/jpeg; charset=binary", Filename: "photo of the printer.jpg", Data: jpeg})

	// It arrives as an inbound image message, like MessageBird sends it.
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Media: &messagebirdtest.MediaRef{URL: url, Caption: "see"}})
	ev, err := messagebird.ParseEvent(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	ref, ok := ev.Message.Content.Attachment()
	if !ok || ev.Message.Type != "image" || ref.URL != url || ref.Caption != "see" {
		t.Fatalf("message %+v", ev.Message)
	}

	m, err := e.client.DownloadMedia(ctx(t), ref.URL, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, jpeg) || m.ContentType != "image/jpeg" || m.Filename != "photo of the printer.jpg" {
		t.Fatalf("media %q %q %d bytes", m.ContentType, m.Filename, len(m.Data))
	}
	if dl := e.fake.MediaDownloads(); len(dl) != 1 || !dl[0].Authorized {
		t.Fatalf("downloads %+v: the fake's API host must get the AccessKey", dl)
	}

	t.Run("exactly the limit", func(t *testing.T) {
		if _, err := e.client.DownloadMedia(ctx(t), url, int64(len(jpeg))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("too large by Content-Length", func(t *testing.T) {
		_, err := e.client.DownloadMedia(ctx(t), url, int64(len(jpeg)-1))
		if !errors.Is(err, messagebird.ErrMediaTooLarge) || connectors.KindOf(err) != connectors.KindRejected {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("too large while streaming", func(t *testing.T) {
		big := e.fake.AddMedia(messagebirdtest.MediaFile{ContentType: "video/mp4", Data: bytes.Repeat([]byte("v"), 64<<10), Chunked: true})
		_, err := e.client.DownloadMedia(ctx(t), big, 10<<10)
		if !errors.Is(err, messagebird.ErrMediaTooLarge) {
			t.Fatalf("err = %v", err)
		}
		m, err := e.client.DownloadMedia(ctx(t), big, 64<<10)
		if err != nil || len(m.Data) != 64<<10 {
			t.Fatalf("within the limit: %d bytes, %v", len(m.Data), err)
		}
	})
	t.Run("no file name: URL segment plus extension; hostile name: sanitised", func(t *testing.T) {
		u := e.fake.AddMedia(messagebirdtest.MediaFile{ContentType: "audio/ogg", Data: []byte("OggS....")})
		m, err := e.client.DownloadMedia(ctx(t), u, 0)
		if err != nil || m.ContentType != "audio/ogg" || len(m.Filename) != 32+4 || m.Filename[32:] != ".ogg" {
			t.Fatalf("%q %q %v", m.ContentType, m.Filename, err)
		}
		u = e.fake.AddMedia(messagebirdtest.MediaFile{ContentType: "application/pdf", Filename: "../../etc/passwd\x07.pdf", Data: []byte("%PDF-1.4")})
		m, err = e.client.DownloadMedia(ctx(t), u, 0)
		if err != nil || m.Filename != "passwd.pdf" {
			t.Fatalf("%q %v", m.Filename, err)
		}
		u = e.fake.AddMedia(messagebirdtest.MediaFile{Data: []byte("%PDF-1.4 no content type")})
		if m, err = e.client.DownloadMedia(ctx(t), u, 0); err != nil || m.ContentType != "application/pdf" {
			t.Fatalf("sniffed %q %v", m.ContentType, err)
		}
	})
	t.Run("missing media", func(t *testing.T) {
		_, err := e.client.DownloadMedia(ctx(t), e.fake.URL()+"/media/gone", 0)
		if connectors.KindOf(err) != connectors.KindNotFound {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not a URL", func(t *testing.T) {
		for _, u := range []string{"", "ftp://x/y", "/v1/media/x", "file:///etc/passwd"} {
			if _, err := e.client.DownloadMedia(ctx(t), u, 0); connectors.KindOf(err) != connectors.KindRejected {
				t.Errorf("%q: %v", u, err)
			}
		}
	})
}

// The AccessKey goes to MessageBird's hosts only: another host is refused by default, and when
// public media is allowed it is fetched without credentials, also after a redirect.
func TestDownloadMediaKeyStaysWithMessageBird(t *testing.T) {
	e := setup(t)
	other := messagebirdtest.New("other-key", "other-signing")
	defer other.Close()
	foreign := other.AddMedia(messagebirdtest.MediaFile{ContentType: "image/png", Data: []byte("\x89PNG\r\n\x1a\n"), Public: true})

	_, err := e.client.DownloadMedia(ctx(t), foreign, 0)
	if !errors.Is(err, messagebird.ErrMediaHostNotAllowed) {
		t.Fatalf("err = %v", err)
	}
	if n := len(other.MediaDownloads()); n != 0 {
		t.Fatalf("%d requests reached a foreign host", n)
	}

	pub := messagebird.New(e.fake.URL(), e.secrets, secretID, nil, messagebird.WithPublicMedia(true))
	m, err := pub.DownloadMedia(ctx(t), foreign, 0)
	if err != nil || m.ContentType != "image/png" {
		t.Fatalf("public media: %+v %v", m, err)
	}
	// A MessageBird media URL that hands off to another host: the key must not follow.
	redirect := e.fake.AddMedia(messagebirdtest.MediaFile{RedirectTo: foreign})
	if _, err := pub.DownloadMedia(ctx(t), redirect, 0); err != nil {
		t.Fatal(err)
	}
	for _, dl := range other.MediaDownloads() {
		if dl.Authorization {
			t.Fatalf("foreign host received an Authorization header: %+v", other.MediaDownloads())
		}
	}
	if dl := e.fake.MediaDownloads(); len(dl) != 1 || !dl[0].Authorized || dl[0].Status != 302 {
		t.Fatalf("MessageBird host downloads %+v", dl)
	}
	// A redirect loop is refused, not reported as an outage.
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	}))
	defer loop.Close()
	if _, err := pub.DownloadMedia(ctx(t), loop.URL+"/again", 0); connectors.KindOf(err) != connectors.KindRejected || connectors.IsOutage(err) {
		t.Fatalf("redirect loop: %v", err)
	}
	// Media that needs the key, on a host that does not get it, fails as unauthorised.
	private := other.AddMedia(messagebirdtest.MediaFile{ContentType: "image/png", Data: []byte("x")})
	if _, err := pub.DownloadMedia(ctx(t), private, 0); connectors.KindOf(err) != connectors.KindUnauthorized {
		t.Fatalf("err = %v", err)
	}
}
