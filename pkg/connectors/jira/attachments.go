package jira

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// File is one file to upload.
type File struct {
	Name        string // file name shown in Jira
	ContentType string // optional; guessed from the name, then the content
	Data        []byte
}

// TemporaryAttachment is what attachTemporaryFile returns for each uploaded file.
type TemporaryAttachment struct {
	TemporaryAttachmentID string `json:"temporaryAttachmentId"`
	FileName              string `json:"fileName"`
}

// AttachTemporaryFiles uploads files to a service desk as temporary attachments
// (POST /rest/servicedeskapi/servicedesk/{id}/attachTemporaryFile): multipart/form-data with each
// file in a part named "file", and X-Atlassian-Token: no-check because multipart endpoints are
// XSRF-protected. Attach them to a request with CreateAttachment.
func (c *Client) AttachTemporaryFiles(ctx context.Context, serviceDeskID string, files ...File) ([]TemporaryAttachment, error) {
	const op = "attach temporary file"
	if len(files) == 0 {
		return nil, rejected(op, "no files")
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range files {
		name := strings.TrimSpace(f.Name)
		if name == "" {
			return nil, rejected(op, "a file has no name")
		}
		ct := f.ContentType
		if ct == "" {
			ct = mime.TypeByExtension(strings.ToLower(path.Ext(name)))
		}
		if ct == "" {
			ct = http.DetectContentType(f.Data)
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": name}))
		h.Set("Content-Type", ct)
		part, err := w.CreatePart(h)
		if err != nil {
			return nil, rejected(op, err.Error())
		}
		if _, err := part.Write(f.Data); err != nil {
			return nil, rejected(op, err.Error())
		}
	}
	if err := w.Close(); err != nil {
		return nil, rejected(op, err.Error())
	}
	header := http.Header{
		"Content-Type":      {w.FormDataContentType()},
		"X-Atlassian-Token": {"no-check"},
		"X-Experimentalapi": {"opt-in"},
	}
	var out struct {
		TemporaryAttachments []TemporaryAttachment `json:"temporaryAttachments"`
	}
	// []byte bodies are re-sent as they are when a 401 forces a retry with fresh credentials.
	if _, err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodPost,
		Path: "/rest/servicedeskapi/servicedesk/" + escape(serviceDeskID) + "/attachTemporaryFile",
		Body: buf.Bytes(), Header: header}, &out); err != nil {
		return nil, err
	}
	if len(out.TemporaryAttachments) != len(files) {
		return nil, &connectors.Error{System: System, Op: op, Status: http.StatusCreated, Kind: connectors.KindBadResponse,
			Message: fmt.Sprintf("uploaded %d files, got %d temporary attachments", len(files), len(out.TemporaryAttachments))}
	}
	return out.TemporaryAttachments, nil
}

// NewAttachment is the body of POST /rest/servicedeskapi/request/{key}/attachment.
type NewAttachment struct {
	TemporaryAttachmentIDs []string
	Public                 bool
	Comment                string // optional additionalComment body
}

// Attachment is an attachment on a request.
type Attachment struct {
	Filename string `json:"filename"`
	Author   User   `json:"author"`
	Created  Date   `json:"created"`
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
	Links    struct {
		JiraRest  string `json:"jiraRest"`
		Content   string `json:"content"`
		Thumbnail string `json:"thumbnail"`
	} `json:"_links"`
}

// AttachmentResult is what creating attachments returns: the comment that carries them and the
// attachments themselves.
type AttachmentResult struct {
	Comment     Comment
	Attachments []Attachment
}

// CreateAttachment turns temporary attachments into attachments of a request, with a comment.
func (c *Client) CreateAttachment(ctx context.Context, issueIDOrKey string, in NewAttachment) (*AttachmentResult, error) {
	const op = "create attachment"
	if len(in.TemporaryAttachmentIDs) == 0 {
		return nil, rejected(op, "no temporary attachment ids")
	}
	body := map[string]any{"temporaryAttachmentIds": in.TemporaryAttachmentIDs, "public": in.Public}
	if in.Comment != "" {
		body["additionalComment"] = map[string]string{"body": in.Comment}
	}
	var out struct {
		Comment     Comment          `json:"comment"`
		Attachments page[Attachment] `json:"attachments"`
	}
	if _, err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodPost,
		Path: "/rest/servicedeskapi/request/" + escape(issueIDOrKey) + "/attachment", Body: body}, &out); err != nil {
		return nil, err
	}
	return &AttachmentResult{Comment: out.Comment, Attachments: out.Attachments.Values}, nil
}

// ListAttachments returns a request's attachments (GET /rest/servicedeskapi/request/{key}/attachment),
// a consistent read: how an attachment whose answer was lost is found before attaching again.
func (c *Client) ListAttachments(ctx context.Context, issueIDOrKey string) ([]Attachment, error) {
	return paged[Attachment](ctx, c, "list attachments", "/rest/servicedeskapi/request/"+escape(issueIDOrKey)+"/attachment", nil, nil)
}

// Attach is the two steps in one: upload files to the request's service desk, then attach them
// to the request with a comment.
func (c *Client) Attach(ctx context.Context, serviceDeskID, issueIDOrKey string, public bool, comment string, files ...File) (*AttachmentResult, error) {
	temps, err := c.AttachTemporaryFiles(ctx, serviceDeskID, files...)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(temps))
	for i, t := range temps {
		ids[i] = t.TemporaryAttachmentID
	}
	return c.CreateAttachment(ctx, issueIDOrKey, NewAttachment{TemporaryAttachmentIDs: ids, Public: public, Comment: comment})
}
