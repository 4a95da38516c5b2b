package messagebirdtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync"
	"time"
)

// Webhook is where the fake delivers events.
type Webhook struct {
	URL       string   // where the fake POSTs (e.g. the local API route)
	PublicURL string   // the URL registered at MessageBird, covered by url_hash; default URL
	Events    []string // default message.created and message.updated
}

// SetWebhook registers (or, with a zero Webhook, removes) the webhook.
func (s *Server) SetWebhook(w Webhook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.URL == "" {
		s.webhook = nil
		return
	}
	if w.PublicURL == "" {
		w.PublicURL = w.URL
	}
	if len(w.Events) == 0 {
		w.Events = []string{"message.created", "message.updated"}
	}
	s.webhook = &w
}

func (s *Server) subscribed(event string) bool {
	if s.webhook == nil {
		return false
	}
	for _, e := range s.webhook.Events {
		if e == event {
			return true
		}
	}
	return false
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Events    []string `json:"events"`
		ChannelID string   `json:"channelId"`
		URL       string   `json:"url"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, 21, "Request body is not valid JSON", "")
		return
	}
	switch {
	case b.URL == "":
		writeError(w, http.StatusUnprocessableEntity, 9, "url is required", "url")
		return
	case len(b.Events) == 0:
		writeError(w, http.StatusUnprocessableEntity, 9, "events is required", "events")
		return
	}
	s.SetWebhook(Webhook{URL: b.URL, Events: b.Events})
	s.mu.Lock()
	wh := *s.webhook
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.webhookWire(wh, b.ChannelID))
}

func (s *Server) listWebhooks(w http.ResponseWriter, _ *http.Request) {
	items := []any{}
	s.mu.Lock()
	wh := s.webhook
	s.mu.Unlock()
	if wh != nil {
		items = append(items, s.webhookWire(*wh, ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"offset": 0, "limit": 10, "count": len(items), "totalCount": len(items), "items": items})
}

func (s *Server) webhookWire(wh Webhook, channelID string) map[string]any {
	return map[string]any{"id": "webhook-1", "channelId": channelID, "url": wh.PublicURL, "events": wh.Events, "status": "enabled",
		"createdDatetime": s.now()}
}

// SignOptions shape the MessageBird-Signature-JWT of a delivery. The zero value signs like
// MessageBird: HS256 with the server's signing key, iss MessageBird, iat = nbf = now,
// exp = now + 60 s, a fresh jti, url_hash of the registered public URL, payload_hash of the body.
type SignOptions struct {
	Key       string        // default the server's SigningKey
	Alg       string        // HS256 (default), HS384, HS512, none, ES256 or RS256 (throwaway keys)
	HeaderAlg string        // claim this alg in the header whatever Alg signed with (alg confusion)
	Issuer    string        // default "MessageBird"
	PublicURL string        // URL hashed into url_hash; default the registered public URL
	Now       time.Time     // default time.Now()
	TTL       time.Duration // exp = Now + TTL; default 60 s; negative for an expired token
	NotBefore time.Duration // nbf = Now + NotBefore
	JTI       string        // default a fresh random id
	// Omit claims.
	OmitExp, OmitNotBefore, OmitIssuedAt, OmitJTI, OmitPayloadHash bool
	// ForcePayloadHash adds payload_hash even for an empty body.
	ForcePayloadHash bool
	// Tamper changes the body after it was signed.
	Tamper func(body []byte) []byte
}

type signerKeys struct {
	ecOnce, rsaOnce sync.Once
	ec              *ecdsa.PrivateKey
	rsa             *rsa.PrivateKey
}

func (k *signerKeys) ecKey() *ecdsa.PrivateKey {
	k.ecOnce.Do(func() { k.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	return k.ec
}

func (k *signerKeys) rsaKey() *rsa.PrivateKey {
	k.rsaOnce.Do(func() { k.rsa, _ = rsa.GenerateKey(rand.Reader, 2048) })
	return k.rsa
}

type claims struct {
	Iss         string `json:"iss,omitempty"`
	Nbf         *int64 `json:"nbf,omitempty"`
	Exp         *int64 `json:"exp,omitempty"`
	Iat         *int64 `json:"iat,omitempty"`
	Jti         string `json:"jti,omitempty"`
	URLHash     string `json:"url_hash"`
	PayloadHash string `json:"payload_hash,omitempty"`
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

var b64 = base64.RawURLEncoding

// Sign returns a MessageBird-Signature-JWT for body and its jti. It is built by hand, not with
// a JWT library, so it checks the verifier against the wire format rather than against itself.
func (s *Server) Sign(body []byte, o SignOptions) (token, jti string) {
	s.mu.Lock()
	key, publicURL := s.SigningKey, ""
	if s.webhook != nil {
		publicURL = s.webhook.PublicURL
	}
	s.mu.Unlock()
	if o.Key != "" {
		key = o.Key
	}
	if o.PublicURL != "" {
		publicURL = o.PublicURL
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = time.Minute
	}
	c := claims{Iss: o.Issuer, URLHash: sha256Hex([]byte(publicURL))}
	if c.Iss == "" {
		c.Iss = "MessageBird"
	}
	unix := func(t time.Time) *int64 { v := t.Unix(); return &v }
	if !o.OmitNotBefore {
		c.Nbf = unix(now.Add(o.NotBefore))
	}
	if !o.OmitExp {
		c.Exp = unix(now.Add(ttl))
	}
	if !o.OmitIssuedAt {
		c.Iat = unix(now)
	}
	if !o.OmitJTI {
		c.Jti = o.JTI
		if c.Jti == "" {
			c.Jti = newID()
		}
	}
	if (len(body) > 0 && !o.OmitPayloadHash) || o.ForcePayloadHash {
		c.PayloadHash = sha256Hex(body)
	}
	alg := o.Alg
	if alg == "" {
		alg = "HS256"
	}
	headerAlg := alg
	if o.HeaderAlg != "" {
		headerAlg = o.HeaderAlg
	}
	h, _ := json.Marshal(map[string]string{"alg": headerAlg, "typ": "JWT"})
	p, _ := json.Marshal(c)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	return input + "." + b64.EncodeToString(s.signature(alg, key, input)), c.Jti
}

func (s *Server) signature(alg, key, input string) []byte {
	hm := func(f func() hash.Hash) []byte {
		m := hmac.New(f, []byte(key))
		m.Write([]byte(input))
		return m.Sum(nil)
	}
	digest := sha256.Sum256([]byte(input))
	switch alg {
	case "none":
		return nil
	case "HS384":
		return hm(sha512.New384)
	case "HS512":
		return hm(sha512.New)
	case "ES256":
		r, ss, err := ecdsa.Sign(rand.Reader, s.keys.ecKey(), digest[:])
		if err != nil {
			return nil
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		ss.FillBytes(out[32:])
		return out
	case "RS256":
		sig, _ := rsa.SignPKCS1v15(rand.Reader, s.keys.rsaKey(), crypto.SHA256, digest[:])
		return sig
	default:
		return hm(sha256.New)
	}
}

// Delivery is one webhook POST (or, when no webhook is registered, what would have been sent).
type Delivery struct {
	Event           string
	ConversationID  string
	MessageID       string
	ContactID       string
	NewConversation bool // the inbound message opened a new conversation
	URL             string
	PublicURL       string
	Body            []byte // exactly what was posted
	Token           string // MessageBird-Signature-JWT
	JTI             string
	Posted          bool
	Status          int    // the receiver's HTTP status; 0 when nothing was posted or the POST failed
	Response        []byte // the receiver's body (first 64 KiB)
	Err             error  // transport error
}

// Deliveries returns every webhook POST so far.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// WaitDeliveries waits until at least n deliveries were made (asynchronous ones included) or
// the timeout passes, and returns them.
func (s *Server) WaitDeliveries(n int, timeout time.Duration) []Delivery {
	deadline := time.Now().Add(timeout)
	for {
		d := s.Deliveries()
		if len(d) >= n || time.Now().After(deadline) {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// post signs body with o (unless token is given) and POSTs it to the webhook.
func (s *Server) post(d Delivery, o SignOptions) Delivery {
	if d.Token == "" {
		d.Token, d.JTI = s.Sign(d.Body, o)
		if o.Tamper != nil {
			d.Body = o.Tamper(bytes.Clone(d.Body))
		}
	}
	s.mu.Lock()
	wh := s.webhook
	s.mu.Unlock()
	if wh == nil {
		return d
	}
	d.URL, d.PublicURL, d.Posted = wh.URL, wh.PublicURL, true
	if o.PublicURL != "" {
		d.PublicURL = o.PublicURL
	}
	ctx, cancel := s.ctxTimeout()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(d.Body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("MessageBird-Signature-JWT", d.Token)
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			d.Status = resp.StatusCode
			d.Response, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
	}
	d.Err = err
	s.mu.Lock()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	return d
}

// Post signs body with o and POSTs it to the webhook, for hand-made or forged events.
func (s *Server) Post(body []byte, o SignOptions) Delivery {
	return s.post(Delivery{Body: body}, o)
}

// PostRaw POSTs body with exactly this token.
func (s *Server) PostRaw(body []byte, token string) Delivery {
	return s.post(Delivery{Body: body, Token: token}, SignOptions{})
}

// Replay POSTs a delivery again, byte for byte, with the same token (same jti).
func (s *Server) Replay(d Delivery) Delivery {
	r := d
	r.Status, r.Response, r.Err, r.Posted = 0, nil, nil, false
	return s.post(r, SignOptions{})
}

type eventBody struct {
	Contact      *Contact      `json:"contact,omitempty"`
	Conversation *Conversation `json:"conversation,omitempty"`
	Message      *Message      `json:"message,omitempty"`
	Type         string        `json:"type"`
}

// eventFor renders an event about conversation c (and message m, if any). Call with s.mu held.
func (s *Server) eventFor(typ string, c *conversation, m *Message) []byte {
	conv := s.conversationWire(c, false)
	ev := eventBody{Conversation: &conv, Type: typ}
	if ct := s.contacts[c.contactID]; ct != nil {
		cc := ct.Contact
		ev.Contact = &cc
	}
	if m != nil {
		mm := *m
		ev.Message = &mm
	}
	b, _ := json.Marshal(ev)
	return b
}

// Inbound is a message from an end user.
type Inbound struct {
	MSISDN    string // digits, with or without "+"
	ChannelID string // default WhatsAppChannelID
	Type      string // default text, or image when Media is set, or location
	Text      string
	Media     *MediaRef // for image, video, audio, file
	Location  *Location
	// At is the message time; default the fake's clock. It moves the contact's 24 h window.
	At                               time.Time
	FirstName, LastName, DisplayName string
	// Sign shapes the message.created delivery's JWT (forged, expired, tampered, ...).
	Sign SignOptions
}

// Receive makes an end user send a message: the contact is created or reused, the message goes
// to the contact's active conversation or a new one, and, when a webhook is registered,
// conversation.created (if subscribed and new) and message.created are posted like MessageBird
// does. The returned delivery is the message.created one (Posted false without a webhook).
func (s *Server) Receive(in Inbound) (Delivery, error) {
	num := digits(in.MSISDN)
	if num == "" {
		return Delivery{}, errors.New("messagebirdtest: inbound message needs an msisdn")
	}
	if in.ChannelID == "" {
		in.ChannelID = WhatsAppChannelID
	}
	if in.Type == "" {
		switch {
		case in.Media != nil:
			in.Type = "image"
		case in.Location != nil:
			in.Type = "location"
		default:
			in.Type = "text"
		}
	}
	content := Content{Text: in.Text, Location: in.Location}
	switch in.Type {
	case "image":
		content.Image = in.Media
	case "video":
		content.Video = in.Media
	case "audio":
		content.Audio = in.Media
	case "file":
		content.File = in.Media
	}
	if p, msg := validContent(in.Type, content); p != "" {
		return Delivery{}, fmt.Errorf("messagebirdtest: %s", msg)
	}

	s.mu.Lock()
	ch, ok := s.channels[in.ChannelID]
	if !ok {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("messagebirdtest: unknown channel %s", in.ChannelID)
	}
	at := in.At.UTC()
	if in.At.IsZero() {
		at = s.now()
	}
	ct := s.contacts[s.byMSISDN[num]]
	if ct == nil {
		ct = &contact{Contact: Contact{ID: newID(), MSISDN: json.Number(num), CustomDetails: map[string]any{}, CreatedDatetime: at},
			lastInbound: map[string]time.Time{}}
		ct.Href = s.srv.URL + "/v1/contacts/" + ct.ID
		s.contacts[ct.ID] = ct
		s.byMSISDN[num] = ct.ID
	}
	if in.FirstName != "" || in.LastName != "" || in.DisplayName != "" {
		ct.FirstName, ct.LastName, ct.DisplayName = in.FirstName, in.LastName, in.DisplayName
		u := at
		ct.UpdatedDatetime = &u
	}
	if at.After(ct.lastInbound[ch.PlatformID]) {
		ct.lastInbound[ch.PlatformID] = at
	}
	conv := s.activeConversation(ct.ID)
	isNew := conv == nil
	if isNew {
		conv = s.newConversation(ct.ID, ch.ID, at)
	}
	conv.useChannel(ch.ID)
	if at.After(conv.lastReceived) {
		conv.lastReceived = at
	}
	conv.updated = at
	m := &Message{ID: newID(), ConversationID: conv.id, Platform: ch.PlatformID, To: ch.number, From: "+" + num, ChannelID: ch.ID,
		Type: in.Type, Content: content, Direction: "received", Status: "received", CreatedDatetime: at, UpdatedDatetime: at}
	s.messages[m.ID] = m
	conv.messages = append(conv.messages, m.ID)
	var created []byte
	if isNew && s.subscribed("conversation.created") {
		created = s.eventFor("conversation.created", conv, nil)
	}
	var body []byte
	if s.webhook == nil || s.subscribed("message.created") {
		body = s.eventFor("message.created", conv, m)
	}
	base := Delivery{ConversationID: conv.id, MessageID: m.ID, ContactID: ct.ID, NewConversation: isNew}
	s.mu.Unlock()

	if created != nil {
		d := base
		d.Event, d.Body = "conversation.created", created
		s.post(d, SignOptions{})
	}
	if body == nil {
		return base, nil
	}
	d := base
	d.Event, d.Body = "message.created", body
	return s.post(d, in.Sign), nil
}

// Echo posts message.created for a stored message, e.g. one the bridge sent (direction "sent"),
// as MessageBird does for outbound messages.
func (s *Server) Echo(messageID string) (Delivery, error) {
	return s.messageEvent("message.created", messageID, nil)
}

// SetStatus changes a message's status (e.g. delivered, read, failed with an error) and posts
// message.updated.
func (s *Server) SetStatus(messageID, status string, e *MessageError) (Delivery, error) {
	return s.messageEvent("message.updated", messageID, func(m *Message) {
		m.Status, m.Error, m.UpdatedDatetime = status, e, s.now()
	})
}

func (s *Server) messageEvent(event, messageID string, change func(*Message)) (Delivery, error) {
	s.mu.Lock()
	m := s.messages[messageID]
	if m == nil {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("messagebirdtest: unknown message %s", messageID)
	}
	if change != nil {
		change(m)
	}
	conv := s.conversations[m.ConversationID]
	d := Delivery{Event: event, ConversationID: conv.id, MessageID: m.ID, ContactID: conv.contactID}
	subscribed := s.subscribed(event)
	if subscribed {
		d.Body = s.eventFor(event, conv, m)
	}
	s.mu.Unlock()
	if !subscribed {
		return d, nil
	}
	return s.post(d, SignOptions{}), nil
}

// ArchiveFromDashboard archives a conversation as an agent would in the MessageBird dashboard
// (not through the API), posting conversation.updated if subscribed.
func (s *Server) ArchiveFromDashboard(conversationID string) (Delivery, error) {
	s.mu.Lock()
	conv := s.conversations[conversationID]
	if conv == nil {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("messagebirdtest: unknown conversation %s", conversationID)
	}
	conv.status, conv.updated = "archived", s.now()
	d := Delivery{Event: "conversation.updated", ConversationID: conv.id, ContactID: conv.contactID}
	subscribed := s.subscribed("conversation.updated")
	if subscribed {
		d.Body = s.eventFor("conversation.updated", conv, nil)
	}
	s.mu.Unlock()
	if !subscribed {
		return d, nil
	}
	return s.post(d, SignOptions{}), nil
}
