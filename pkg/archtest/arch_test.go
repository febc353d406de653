package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/pvenode/pvenode"

type pkgInfo struct {
	ImportPath string
	Doc        string
	Imports    []string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkgInfo
	for dec.More() {
		var p pkgInfo
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// level gives each package's layer; a package may import only packages of a
// lower layer (or its own sub-packages). See docs/architecture.md.
func level(path string) int {
	rel := strings.TrimPrefix(path, module+"/")
	switch {
	case strings.HasPrefix(rel, "cmd/"), strings.HasPrefix(rel, "tools/"):
		return 6
	case strings.HasPrefix(rel, "pkg/service/"):
		return 5
	case strings.HasPrefix(rel, "pkg/api2/tree"):
		return 4
	case strings.HasPrefix(rel, "pkg/api2"), rel == "pkg/api/apitest": // apitest: test support over pkg/api
		return 3
	case rel == "pkg/api", rel == "pkg/httpd", rel == "pkg/daemon", rel == "pkg/apischema", rel == "pkg/proxyconf":
		return 2
	case rel == "pkg/access", rel == "pkg/apimux", rel == "pkg/vmlist", rel == "pkg/vmm", rel == "pkg/setup", rel == "pkg/nodestatus", rel == "pkg/tlsconf",
		strings.HasPrefix(rel, "pkg/tlsconf/"):
		return 1
	case rel == "pkg/pvefs":
		return 0
	default: // pure leaf packages: ticket, netacl, defaultsfile, reqinfo, nodename, buildinfo
		return -1
	}
}

func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		lp := level(p.ImportPath)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") || strings.HasPrefix(imp, p.ImportPath+"/") {
				continue
			}
			if li := level(imp); li >= lp {
				t.Errorf("%s (level %d) imports %s (level %d): imports must go down", p.ImportPath, lp, imp, li)
			}
		}
	}
}

func TestServicesAreIndependent(t *testing.T) {
	for _, p := range listPackages(t) {
		if !strings.HasPrefix(p.ImportPath, module+"/pkg/service/") {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/pkg/service/") {
				t.Errorf("%s imports %s; services talk over loopback, not through code", p.ImportPath, imp)
			}
		}
	}
}

func TestPackagesHaveDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.HasPrefix(p.ImportPath, module+"/cmd/") || strings.HasPrefix(p.ImportPath, module+"/test/") {
			continue
		}
		if p.Doc == "" {
			t.Errorf("%s has no package comment", p.ImportPath)
		}
	}
}
