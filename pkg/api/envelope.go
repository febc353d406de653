package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

const contentTypeJSON = "application/json;charset=UTF-8"

// contentTypeJSONValue is shared by every answer and never modified.
var contentTypeJSONValue = []string{contentTypeJSON}

type jsonEnvelope struct {
	Data  any  `json:"data"`
	Total *int `json:"total,omitempty"`
}

type extjsEnvelope struct {
	Data    any  `json:"data"`
	Success int  `json:"success"`
	Total   *int `json:"total,omitempty"`
}

type jsonErrorEnvelope struct {
	Data    any               `json:"data"`
	Message string            `json:"message"`
	Errors  map[string]string `json:"errors,omitempty"`
}

type extjsErrorEnvelope struct {
	Data    any               `json:"data"`
	Success int               `json:"success"`
	Message string            `json:"message"`
	Status  int               `json:"status"`
	Errors  map[string]string `json:"errors,omitempty"`
}

func writeData(w http.ResponseWriter, format string, data any, total *int) {
	if total != nil && *total == 0 {
		total = nil
	}
	if raw, ok := data.(json.RawMessage); ok && total == nil {
		// Pre-encoded answers skip reflection and re-compaction.
		b := make([]byte, 0, len(raw)+24)
		b = append(b, `{"data":`...)
		b = append(b, raw...)
		if format == "extjs" {
			b = append(b, `,"success":1`...)
		}
		b = append(b, '}')
		writeBytes(w, http.StatusOK, b)
		return
	}
	var v any
	if format == "extjs" {
		v = extjsEnvelope{Data: data, Success: 1, Total: total}
	} else {
		v = jsonEnvelope{Data: data, Total: total}
	}
	writeJSON(w, http.StatusOK, v)
}

// writeError renders err in the envelope of format: real status codes for
// json, HTTP 200 with success 0 for extjs.
func writeError(w http.ResponseWriter, format string, err error) {
	e := asError(err)
	if format == "extjs" {
		writeJSON(w, http.StatusOK, extjsErrorEnvelope{Success: 0, Message: e.Message, Status: e.Status, Errors: e.Errors})
		return
	}
	if e.Status >= 400 {
		// PVE closes the connection after every error response.
		w.Header().Set("Connection", "close")
	}
	writeJSON(w, e.Status, jsonErrorEnvelope{Message: e.Message, Errors: e.Errors})
}

// WriteError renders an error in the json envelope, with its first line as
// the reason phrase; for errors outside a method's handling.
func WriteError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	reqinfo.FromContext(r.Context()).SetReason(msg)
	writeError(w, "json", &Error{Status: status, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"data":null,"message":"unable to encode result\n"}`)
	}
	writeBytes(w, status, b)
}

func writeBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	// Canonical keys assigned directly: Header.Set canonicalises on every
	// call, and this runs for every answer.
	h["Content-Type"] = contentTypeJSONValue
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

// contentTypeVirtViewer is the type of the spiceconfig format: a
// remote-viewer connection file.
const contentTypeVirtViewer = "application/x-virt-viewer;charset=UTF-8"

// writeSpiceConfig answers data in PVE's spiceconfig format (its
// Formatter::Standard): "[virt-viewer]" then one key=value line per field
// of the object (PVE's order is a hash's; here sorted). Data that is not
// an object gives an empty body, as PVE's formatter does.
func writeSpiceConfig(w http.ResponseWriter, data any) {
	var fields map[string]json.RawMessage
	if raw, err := json.Marshal(data); err == nil {
		_ = json.Unmarshal(raw, &fields)
	}
	var b []byte
	if fields != nil {
		b = append(b, "[virt-viewer]\n"...)
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := fields[k]
			if string(v) == "null" {
				continue
			}
			var str string
			if json.Unmarshal(v, &str) != nil {
				str = string(v) // numbers as JSON writes them
			}
			b = append(b, k+"="+str+"\n"...)
		}
	}
	h := w.Header()
	h["Content-Type"] = []string{contentTypeVirtViewer}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// AnswerError is a PVE API call's failure as a client sees it: the HTTP
// status and the envelope's message, with the per-parameter errors.
type AnswerError struct {
	Status  int
	Message string
}

func (e *AnswerError) Error() string { return e.Message }

// DecodeAnswer reads a PVE API answer (the JSON envelope) as a client
// does: for status 200 the data goes into out (if not nil); otherwise the
// result is an *AnswerError with the message (else the status line) and
// the per-parameter errors sorted by name.
func DecodeAnswer(status int, statusLine string, body []byte, out any) error {
	var env struct {
		Data    json.RawMessage   `json:"data"`
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	_ = json.Unmarshal(body, &env)
	if status != http.StatusOK {
		msg := strings.TrimSpace(env.Message)
		if msg == "" {
			msg = statusLine
		}
		for _, k := range sortedKeys(env.Errors) {
			msg += fmt.Sprintf("; %s: %s", k, env.Errors[k])
		}
		return &AnswerError{Status: status, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("unexpected answer %.200q: %w", body, err)
	}
	return nil
}
