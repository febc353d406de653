package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error with PVE's shape: an HTTP status, a message (PVE's
// messages usually end in a newline) and, for parameter errors, a message per
// parameter.
type Error struct {
	Status  int
	Message string
	Errors  map[string]string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with status and a formatted message; a newline is
// appended as PVE's die messages carry one.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...) + "\n"}
}

// ParamError returns the 400 error for parameter errors.
func ParamError(errs map[string]string) *Error {
	return &Error{Status: http.StatusBadRequest, Message: "Parameter verification failed.\n", Errors: errs}
}

// Messages PVE answers with; clients match some of them.
const (
	MsgNoTicket   = "No ticket"
	MsgAuthFailed = "Authentication failed!"
	MsgBadCSRF    = "Permission denied - invalid csrf token"
	MsgLoginFail  = "authentication failure"
)

// PermissionDenied returns PVE's 403 for a failed privilege check.
func PermissionDenied(path string, privs ...string) *Error {
	list := ""
	for i, p := range privs {
		if i > 0 {
			list += "|"
		}
		list += p
	}
	return &Error{Status: http.StatusForbidden, Message: fmt.Sprintf("Permission check failed (%s, %s)\n", path, list)}
}

// asError maps any handler error to an *Error: *Error keeps its status,
// anything else is a 500 with the error text, as PVE reports a die.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := err.Error()
	if msg == "" || msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	return &Error{Status: http.StatusInternalServerError, Message: msg}
}
