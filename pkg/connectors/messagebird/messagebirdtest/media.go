package messagebirdtest

import (
	"mime"
	"net/http"
	"strconv"
)

// MediaFile is a file served at URL()+"/media/{id}", like an inbound attachment on
// https://media.messagebird.com/v1/media/{uuid}.
type MediaFile struct {
	ContentType string
	Filename    string // sent as Content-Disposition when set
	Data        []byte
	Public      bool   // served without the AccessKey
	Chunked     bool   // no Content-Length: the size is only known while streaming
	RedirectTo  string // answer 302 to this URL instead (a hand-off to a CDN)
}

// AddMedia stores a file and returns its URL.
func (s *Server) AddMedia(f MediaFile) string {
	id := newID()
	s.mu.Lock()
	s.media[id] = f
	s.mu.Unlock()
	return s.URL() + "/media/" + id
}

func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request, id string, authorized bool) {
	s.mu.Lock()
	f, ok := s.media[id]
	s.mu.Unlock()
	status := http.StatusOK
	defer func() {
		s.mu.Lock()
		s.downloads = append(s.downloads, MediaDownload{ID: id, Authorization: r.Header.Get("Authorization") != "", Authorized: authorized, Status: status})
		s.mu.Unlock()
	}()
	switch {
	case !ok:
		status = http.StatusNotFound
		writeError(w, status, 20, "media not found", "id")
		return
	case !f.Public && !authorized:
		status = http.StatusUnauthorized
		writeError(w, status, 2, "Request not allowed (incorrect access_key)", "access_key")
		return
	case f.RedirectTo != "":
		status = http.StatusFound
		http.Redirect(w, r, f.RedirectTo, status)
		return
	}
	if f.ContentType != "" {
		w.Header().Set("Content-Type", f.ContentType)
	}
	if f.Filename != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Filename}))
	}
	if f.Chunked {
		w.WriteHeader(status)
		fl, _ := w.(http.Flusher)
		for i := 0; i < len(f.Data); i += 4096 {
			end := min(i+4096, len(f.Data))
			if _, err := w.Write(f.Data[i:end]); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Data)))
	w.WriteHeader(status)
	_, _ = w.Write(f.Data)
}
