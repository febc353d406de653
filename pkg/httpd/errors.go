package httpd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// WriteError answers with status and PVE's JSON error envelope
// {"data":null,"message":"<msg>\n"} (a newline is appended unless msg ends
// with one). PVE also puts the first line of msg in the reason phrase, which
// net/http cannot do; clients read the message from the body.
func WriteError(w http.ResponseWriter, status int, msg string) {
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
