package tree

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/pvenode/pvenode/pkg/apischema"
)

// ourSchema dumps every declared method and loads it back in apischema's
// model, exactly as a client of the dump would.
func ourSchema(t *testing.T) []*apischema.Node {
	t.Helper()
	var buf bytes.Buffer
	if err := Registry(Deps{}).WriteDump(&buf); err != nil {
		t.Fatal(err)
	}
	nodes, err := apischema.Load(&buf)
	if err != nil {
		t.Fatalf("load our dump: %v", err)
	}
	return nodes
}

// TestConformsToPVESchema holds every method we declare against PVE's own
// schema (structure-only copy in pkg/apischema/testdata): path, HTTP method,
// parameters, protected, proxyto, allowtoken, permissions and return shape.
// Differences must be listed with a reason in deviations.txt.
func TestConformsToPVESchema(t *testing.T) {
	pve, err := apischema.LoadFile("../../apischema/testdata/pve-api-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := apischema.LoadDeviations("../../apischema/testdata/deviations.txt")
	if err != nil {
		t.Fatal(err)
	}
	ours := ourSchema(t)
	for _, d := range apischema.Compare(apischema.Flatten(ours), apischema.Flatten(pve), dev) {
		t.Errorf("%s", d)
	}
	impl, total, _ := apischema.Coverage(apischema.Flatten(ours), apischema.Flatten(pve))
	if total != 649 {
		t.Errorf("PVE schema has %d methods; want 649", total)
	}
	t.Logf("%d of %d PVE API methods implemented", impl, total)
}

var update = flag.Bool("update", false, "rewrite docs/api-coverage.txt")

// TestCoverageDocIsCurrent keeps docs/api-coverage.txt (the output of
// `make api-coverage`) in step with the declarations; `go test -update`
// rewrites it.
func TestCoverageDocIsCurrent(t *testing.T) {
	pve, err := apischema.LoadFile("../../apischema/testdata/pve-api-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := apischema.WriteCoverageReport(&got, ourSchema(t), pve); err != nil {
		t.Fatal(err)
	}
	const path = "../../../docs/api-coverage.txt"
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("docs/api-coverage.txt is stale; run go test ./pkg/api2/tree -update")
	}
}
