// Package root declares the top of the API tree: GET / (the directory
// index, which PVE's API viewer data leaves out) and GET /version.
package root

import (
	"context"
	"encoding/json"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/buildinfo"
)

// Methods returns the declarations of this package.
func Methods() []api.Method {
	return []api.Method{{
		Name: "index", Path: "/", HTTP: "GET",
		Description: "Directory index.",
		Permissions: api.AllUsers,
		Returns: api.Arr(api.Obj(map[string]*api.Schema{"subdir": api.Str()})).
			WithLinks(api.Link{Href: "{subdir}", Rel: "child"}),
		// The children of / this build implements, in PVE's order.
		Handle: api.DirIndex("subdir", "version", "cluster", "nodes", "access", "pools"),
	}, {
		Name: "version", Path: "/version", HTTP: "GET",
		Description: "API version details.",
		Permissions: api.AllUsers,
		Returns: api.Obj(map[string]*api.Schema{
			"version": api.Str(),
			"release": api.Str(),
			"repoid":  api.Str().Pat("[0-9a-fA-F]{8,64}"),
			"console": api.Str().Enums("applet", "vv", "html5", "xtermjs").Opt(),
			// Deliberate addition (docs/api.md): our own version, so that
			// operators can tell the implementation apart.
			"pvenode": api.Obj(map[string]*api.Schema{"version": api.Str(), "commit": api.Str()}).Opt(),
		}),
		Handle: versionHandler(),
	}}
}

// Version is the answer of GET /version. The reported version is the PVE
// release whose API this build implements, because clients gate features on
// it; our own version is in the added pvenode field.
type Version struct {
	Version string         `json:"version"`
	Release string         `json:"release"`
	RepoID  string         `json:"repoid"`
	PVENode map[string]any `json:"pvenode"`
}

// versionHandler answers with an encoding made once: the answer never changes
// while the process runs, and this is the hottest call clients make.
func versionHandler() api.HandlerFunc {
	b, err := json.Marshal(Version{
		Version: buildinfo.PVEVersion,
		Release: buildinfo.PVERelease,
		RepoID:  buildinfo.Commit,
		PVENode: map[string]any{"version": buildinfo.Version, "commit": buildinfo.Commit},
	})
	if err != nil {
		panic(err) // static data
	}
	var answer any = json.RawMessage(b) // boxed once, not per call
	return func(ctx context.Context, r *api.Request) (any, error) { return answer, nil }
}
