package pveproxy

import (
	"net/http"
	"os/user"
)

// indexPage answers / : PVE serves its web interface there, which this
// build does not ship; the page says so and points at the API.
func indexPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html;charset=UTF-8")
	w.Write([]byte(`<!DOCTYPE html>
<html><head><title>pvenode</title></head><body>
<h1>Proxmox VE API node (pvenode)</h1>
<p>The API is served under <a href="/api2/json/version">/api2/json/</a>
(log in with POST /api2/json/access/ticket).</p>
<p>The web interface is not implemented yet.</p>
</body></html>
`))
}

func lookupUser(name string) (*user.User, error) { return user.Lookup(name) }
