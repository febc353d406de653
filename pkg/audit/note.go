package audit

import (
	"context"
	"sync"
)

// Note carries the reason of a call's outcome from where it is known (the
// password check of a login) to the layer that writes the audit line, which
// otherwise sees only the answer the client gets ("authentication
// failure"). Create it with WithNote.
type Note struct {
	mu     sync.Mutex // guards reason
	reason string
}

type noteKey struct{}

// WithNote returns a copy of ctx carrying a new Note, and the Note.
func WithNote(ctx context.Context) (context.Context, *Note) {
	n := &Note{}
	return context.WithValue(ctx, noteKey{}, n), n
}

// SetReason records reason in the Note of ctx; the last call wins. It does
// nothing when ctx carries no Note.
func SetReason(ctx context.Context, reason string) {
	n, _ := ctx.Value(noteKey{}).(*Note)
	if n == nil {
		return
	}
	n.mu.Lock()
	n.reason = reason
	n.mu.Unlock()
}

// Reason returns the recorded reason ("" for none or a nil Note).
func (n *Note) Reason() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reason
}
