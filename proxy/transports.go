package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/mxedge/mxedge/h1"
)

// maxTransportsBody bounds the homeserver answer to the transports endpoint
// that mxedge reads to judge; a longer one is passed on as it is.
const maxTransportsBody = 64 << 10

// transportsAnswer is the MatrixRTC transports answer for lk-jwt-service at
// serviceURL (MSC4143: {"rtc_transports":[{"type":"livekit",…}]}).
func transportsAnswer(serviceURL string) []byte {
	b, _ := json.Marshal(map[string]any{"rtc_transports": []any{map[string]string{"type": "livekit", "livekit_service_url": serviceURL}}})
	return b
}

// transports passes the homeserver's answer to the transports endpoint on
// when it lists transports, and answers the configured list instead when it
// lists none (Synapse's 200 {} when matrix_rtc is unset) or does not know the
// endpoint (404/400/405 M_UNRECOGNIZED): an empty answer stops clients from
// looking elsewhere (Element X caches it for a day, Element Call 0.24 has no
// other source). Any other answer (401, 429, 5xx) is passed on: the endpoint
// stays authenticated.
func (f *forwarder) transports(w *responseWriter, rq *request, res *h1.Response) error {
	buf := make([]byte, maxTransportsBody+1)
	n, err := io.ReadFull(res, buf)
	whole := err == io.EOF || err == io.ErrUnexpectedEOF
	if err != nil && !whole {
		return err
	}
	body := buf[:n]
	if whole && lacksTransports(res.Status, body) {
		h := w.Header()
		h["Content-Type"] = hdrJSON
		h["Cache-Control"] = hdrNoStore
		h["Content-Length"] = []string{strconv.Itoa(len(rq.snap.rtcTransports))}
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(rq.snap.rtcTransports)
		if err != nil {
			return &h1.WriteError{Err: err}
		}
		return nil
	}
	res.Header(w.Header())
	w.WriteHeader(res.Status)
	if _, err := w.Write(body); err != nil {
		return &h1.WriteError{Err: err}
	}
	if whole {
		return nil
	}
	return res.WriteBody(w)
}

// lacksTransports judges a homeserver answer to the transports endpoint.
func lacksTransports(status int, body []byte) bool {
	var doc struct {
		Transports []json.RawMessage `json:"rtc_transports"`
		Errcode    string            `json:"errcode"`
	}
	switch status {
	case http.StatusOK:
		return json.Unmarshal(body, &doc) == nil && len(doc.Transports) == 0
	case http.StatusNotFound, http.StatusBadRequest, http.StatusMethodNotAllowed:
		return json.Unmarshal(body, &doc) != nil || doc.Errcode == "M_UNRECOGNIZED" || doc.Errcode == "M_NOT_FOUND"
	}
	return false
}
