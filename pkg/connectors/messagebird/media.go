package messagebird

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// DefaultMaxMedia is the download limit used when DownloadMedia is given maxBytes <= 0.
const DefaultMaxMedia = 20 << 20

type mediaPolicy struct {
	authHosts   []string // lowercase "host" or "host:port"
	allowPublic bool
}

func normaliseHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// mediaAuthorised reports whether u may receive the AccessKey: the API's own scheme and host,
// or https to one of the media hosts (an entry without a port matches only the default port).
func (c *Client) mediaAuthorised(u *url.URL) bool {
	if u == nil || u.User != nil {
		return false
	}
	if strings.EqualFold(u.Scheme, c.base.Scheme) && strings.EqualFold(u.Host, c.base.Host) && c.base.Host != "" {
		return true
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return false
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	for _, h := range c.media.authHosts {
		if hh, pp, err := net.SplitHostPort(h); err == nil {
			if hh == host && pp == port {
				return true
			}
			continue
		}
		if h == host && (port == "" || port == "443") {
			return true
		}
	}
	return false
}

// errRedirect marks a redirect the media client refused to follow.
var errRedirect = errors.New("redirect refused")

// mediaHTTPClient shares hc's transport but follows up to 3 redirects (a media host may hand off
// to a CDN), never from https to http, and drops the AccessKey on any hop to a host that may
// not receive it.
func mediaHTTPClient(hc *http.Client, authorised func(*url.URL) bool) *http.Client {
	if hc == nil {
		hc = connectors.DefaultHTTPClient
	}
	c := *hc
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return fmt.Errorf("%w: more than 3 redirects", errRedirect)
		}
		if strings.EqualFold(via[len(via)-1].URL.Scheme, "https") && !strings.EqualFold(req.URL.Scheme, "https") {
			return fmt.Errorf("%w: from https to http", errRedirect)
		}
		if !authorised(req.URL) {
			req.Header.Del("Authorization")
		}
		return nil
	}
	return &c
}

// DownloadMedia fetches an inbound attachment (message content image|video|audio|file url).
// The AccessKey is sent only to the API host and the media hosts (see WithMediaHosts); other
// hosts are refused unless WithPublicMedia is set, and then get no credentials. At most maxBytes
// are read (DefaultMaxMedia when maxBytes <= 0): a larger file fails with ErrMediaTooLarge as
// soon as that is known, from Content-Length or while streaming. The result carries the
// content type (from the response, else sniffed) and a safe file name (Content-Disposition,
// else the URL's last segment plus an extension for the type).
func (c *Client) DownloadMedia(ctx context.Context, mediaURL string, maxBytes int64) (Media, error) {
	const op = "download media"
	fail := func(kind connectors.Kind, status int, err error) (Media, error) {
		return Media{}, &connectors.Error{System: System, Op: op, Kind: kind, Status: status, Err: err}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMedia
	}
	u, err := url.Parse(strings.TrimSpace(mediaURL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fail(connectors.KindRejected, 0, fmt.Errorf("media url is not an absolute http(s) URL"))
	}
	auth := c.mediaAuthorised(u)
	if !auth && !c.media.allowPublic {
		return fail(connectors.KindRejected, 0, fmt.Errorf("%w: %s", ErrMediaHostNotAllowed, u.Host))
	}
	resp, err := c.getMedia(ctx, u, auth)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && auth {
		resp.Body.Close()
		c.auth.Invalidate()
		resp, err = c.getMedia(ctx, u, auth)
	}
	if err != nil {
		var ce *connectors.Error
		switch {
		case errors.As(err, &ce):
			return Media{}, err
		case errors.Is(err, errRedirect):
			return fail(connectors.KindRejected, 0, err)
		}
		return fail(connectors.KindUnavailable, 0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		e := &connectors.Error{System: System, Op: op, Status: resp.StatusCode, Kind: connectors.KindForStatus(resp.StatusCode)}
		e.Code, e.Message = ParseError(body)
		return Media{}, e
	}
	if resp.ContentLength > maxBytes {
		return fail(connectors.KindRejected, resp.StatusCode, fmt.Errorf("%w: %d bytes, limit %d", ErrMediaTooLarge, resp.ContentLength, maxBytes))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return fail(connectors.KindUnavailable, resp.StatusCode, fmt.Errorf("read media: %w", err))
	}
	if int64(len(data)) > maxBytes {
		return fail(connectors.KindRejected, resp.StatusCode, fmt.Errorf("%w: more than %d bytes", ErrMediaTooLarge, maxBytes))
	}
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		ct = mt
	} else {
		ct = ""
	}
	if ct == "" || ct == "application/octet-stream" {
		if sniffed, _, _ := mime.ParseMediaType(http.DetectContentType(data)); sniffed != "" && (ct == "" || sniffed != "text/plain") {
			ct = sniffed
		}
	}
	return Media{URL: mediaURL, Data: data, ContentType: ct, Filename: mediaFilename(resp.Header.Get("Content-Disposition"), u, ct)}, nil
}

func (c *Client) getMedia(ctx context.Context, u *url.URL, auth bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "*/*")
	if auth {
		if err := c.auth.Apply(ctx, req); err != nil {
			return nil, err
		}
	}
	return c.mediaHTTP.Do(req)
}

var mediaExt = map[string]string{
	"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
	"video/mp4": ".mp4", "video/3gpp": ".3gp", "audio/ogg": ".ogg", "audio/mpeg": ".mp3",
	"audio/aac": ".aac", "audio/amr": ".amr", "audio/mp4": ".m4a", "application/pdf": ".pdf",
	"text/plain": ".txt",
}

// mediaFilename picks a file name that is safe to hand to Jira: no directories, no control
// characters, at most 120 characters.
func mediaFilename(disposition string, u *url.URL, contentType string) string {
	name := ""
	if _, params, err := mime.ParseMediaType(disposition); err == nil {
		name = params["filename"]
	}
	name = sanitizeFilename(name)
	if name == "" {
		name = sanitizeFilename(path.Base(u.Path))
		if name == "" || name == "." || name == "/" {
			name = "attachment"
		}
		if path.Ext(name) == "" {
			ext := mediaExt[contentType]
			if ext == "" {
				if exts, _ := mime.ExtensionsByType(contentType); len(exts) > 0 {
					ext = exts[0]
				}
			}
			name += ext
		}
	}
	return name
}

func sanitizeFilename(s string) string {
	s = strings.ReplaceAll(s, "\\", "/")
	s = path.Base(s)
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' || r == '"' {
			return -1
		}
		return r
	}, s)
	s = strings.Trim(strings.TrimSpace(s), ".")
	if len([]rune(s)) > 120 {
		r := []rune(s)
		ext := path.Ext(s)
		if len([]rune(ext)) > 10 {
			ext = ""
		}
		s = string(r[:120-len([]rune(ext))]) + ext
	}
	return s
}
