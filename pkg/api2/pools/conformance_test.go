package pools_test

import (
	"bytes"
	"testing"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api2/pools"
	"github.com/pvenode/pvenode/pkg/apischema"
)

// TestConformsToPVESchema holds the /pools declarations against PVE's own
// schema (the tree-wide test does the same once the package is mounted).
func TestConformsToPVESchema(t *testing.T) {
	var buf bytes.Buffer
	if err := api.NewRegistry(pools.Methods(pools.Deps{})).WriteDump(&buf); err != nil {
		t.Fatal(err)
	}
	ours, err := apischema.Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	pve, err := apischema.LoadPVE()
	if err != nil {
		t.Fatal(err)
	}
	flat := apischema.Flatten(ours)
	if len(flat) != 7 {
		t.Errorf("%d methods declared; want 7", len(flat))
	}
	for _, d := range apischema.Compare(flat, apischema.Flatten(pve), nil) {
		t.Errorf("%s", d)
	}
}
