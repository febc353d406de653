// Package pending is the service of a daemon whose own work has not been
// built yet: the lifecycle commands exist, and start fails with a plain
// "not implemented yet" naming what is missing, instead of pretending.
package pending

import (
	"fmt"

	"github.com/pvenode/pvenode/pkg/daemon"
)

// New returns a constructor for daemon.Spec.New whose service refuses to
// start with a message naming the missing work.
func New(missing string) func(daemon.Env) (daemon.Service, error) {
	return func(daemon.Env) (daemon.Service, error) {
		return nil, fmt.Errorf("not implemented yet: %s", missing)
	}
}
