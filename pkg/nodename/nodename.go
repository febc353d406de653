// Package nodename derives this node's name the way PVE does: the host name
// up to the first dot.
package nodename

import (
	"fmt"
	"os"
	"strings"
)

// Default returns the short host name.
func Default() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	short, _, _ := strings.Cut(h, ".")
	if short == "" {
		return "", fmt.Errorf("node name: empty host name")
	}
	return short, nil
}

// Resolve returns name if set, else Default.
func Resolve(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	return Default()
}
