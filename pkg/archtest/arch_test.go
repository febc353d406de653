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
		return 60
	case strings.HasPrefix(rel, "pkg/service/"):
		return 50
	case strings.HasPrefix(rel, "pkg/api2/tree"):
		return 40
	case strings.HasPrefix(rel, "pkg/api2"), rel == "pkg/api/apitest": // apitest: test support over pkg/api
		return 30
	case rel == "pkg/replication": // runs jobs (jobs) with backups' disk copies (vzdump)
		return 28
	case rel == "pkg/jobs": // job files (sectioncfg) and state
		return 27
	case rel == "pkg/sectioncfg": // section-config files checked with the API's schemas
		return 25
	case rel == "pkg/api", rel == "pkg/httpd", rel == "pkg/daemon", rel == "pkg/apischema", rel == "pkg/proxyconf":
		return 20
	case rel == "pkg/vzdump": // backups of the VMs of pkg/vmm
		return 15
	case rel == "pkg/access", rel == "pkg/apimux", rel == "pkg/vmlist", rel == "pkg/vmm", rel == "pkg/setup", rel == "pkg/nodestatus", rel == "pkg/tlsconf",
		strings.HasPrefix(rel, "pkg/tlsconf/"):
		return 10
	case rel == "pkg/pvefs":
		return 0
	case rel == "pkg/lockfile", rel == "pkg/calendar", rel == "pkg/vma", rel == "pkg/sectiontext", rel == "pkg/pvetext":
		// the lowest leaves: file primitives and formats the other leaves use
		return -20
	default: // pure leaf packages: ticket, netacl, defaultsfile, reqinfo, nodename, buildinfo, storage, tasks, qemu
		return -10
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
