package access_test

import (
	"testing"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	accessapi "github.com/pvenode/pvenode/pkg/api2/access"
)

// harness is a pvedaemon-mode API server for the /access methods over a
// real Authenticator and a config root in a temporary directory.
type harness struct {
	*apitest.Client
}

const testPassword = apitest.Password

var vals = apitest.Values

// newHarness writes userCfg (after the root user) and starts the server.
// Every user of the pve realm gets testPassword.
func newHarness(t *testing.T, userCfg string) *harness {
	t.Helper()
	env := apitest.New(t, apitest.Setup{Files: map[string]string{"user.cfg": apitest.RootUser + userCfg}})
	reg := api.NewRegistry(accessapi.Methods(accessapi.Deps{Access: env.Auth, Log: env.Log, Root: env.Root}))
	return &harness{env.Serve(reg)}
}

// userCfg reads user.cfg back from disk.
func (h *harness) userCfg() *access.UserCfg {
	h.TB.Helper()
	data := h.File("user.cfg")
	cfg, warns := access.ParseUserCfg("user.cfg", []byte(data))
	if len(warns) > 0 {
		h.TB.Fatalf("user.cfg written with problems: %v\n%s", warns, data)
	}
	return cfg
}
