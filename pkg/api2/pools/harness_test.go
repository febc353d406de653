package pools_test

import (
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/pools"
)

// harness is a pvedaemon-mode API server for the /pools methods over a
// real Authenticator and a config root in a temporary directory.
type harness struct {
	*apitest.Client
}

var vals = apitest.Values

// sharedKeys are the signing keys of the first harness, reused by the
// others.
var sharedKeys apitest.KeyCache

// newHarness writes userCfg (after the root user) and the other files
// (name under the config root -> content), and starts the server on node
// "n1". Every user of the pve realm gets apitest.Password.
func newHarness(t *testing.T, userCfg string, files map[string]string) *harness {
	t.Helper()
	all := map[string]string{"user.cfg": apitest.RootUser + userCfg}
	for name, data := range files {
		all[name] = data
	}
	env := apitest.New(t, apitest.Setup{Files: all, Keys: &sharedKeys})
	return &harness{env.Serve(api.NewRegistry(pools.Methods(pools.Deps{Access: env.Auth, Root: env.Root})))}
}

// poolLines returns the pool: lines of user.cfg as written.
func (h *harness) poolLines() string {
	h.TB.Helper()
	var out []string
	for _, l := range strings.Split(h.File("user.cfg"), "\n") {
		if strings.HasPrefix(l, "pool:") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
