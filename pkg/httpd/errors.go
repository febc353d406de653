package httpd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

// WriteError answers r with status and PVE's JSON error envelope
// {"data":null,"message":"<msg>\n"} (a newline is appended unless msg ends
// with one), and asks for msg's first line as the reason phrase, as PVE
// answers (effective on connections from ReasonListener).
func WriteError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	reqinfo.FromContext(r.Context()).SetReason(msg)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // PVE's JSON encoder leaves <, > and & alone
	_ = enc.Encode(struct {
		Data    *struct{} `json:"data"`
		Message string    `json:"message"`
	}{Message: msg}) // cannot fail for a string
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client is gone if this fails
}
