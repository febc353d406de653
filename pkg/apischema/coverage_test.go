package apischema

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// subset builds a flat tree holding the methods keys of pve, one node per
// path, as our own dump might.
func subset(t *testing.T, pve map[string]*Method, keys ...string) []*Node {
	t.Helper()
	byPath := map[string]*Node{}
	var out []*Node
	for _, k := range keys {
		verb, path, _ := strings.Cut(k, " ")
		m := pve[k]
		if m == nil {
			m = &Method{Method: verb}
		}
		n := byPath[path]
		if n == nil {
			n = &Node{Path: path, Text: path[strings.LastIndex(path, "/")+1:], Leaf: true, Info: map[string]*Method{}}
			byPath[path] = n
			out = append(out, n)
		}
		n.Info[verb] = m
	}
	return out
}

var ourKeys = []string{
	"GET /version",
	"POST /access/ticket",
	"GET /access/ticket",
	"GET /nodes/{node}/qemu/{vmid}/status/current",
	"POST /nodes/{node}/qemu/{vmid}/status/start",
	"GET /cluster/resources",
	"GET /nodes/{node}/ours-only",
}

func TestCoverage(t *testing.T) {
	tree := pveTree(t)
	pve := Flatten(tree)
	ours := Flatten(subset(t, pve, ourKeys...))
	implemented, total, missing := Coverage(ours, pve)
	if implemented != 6 || total != 649 {
		t.Errorf("Coverage = %d of %d; want 6 of 649", implemented, total)
	}
	if len(missing) != 649-6 {
		t.Errorf("len(missing) = %d; want %d", len(missing), 649-6)
	}
	if slices.Contains(missing, "GET /version") || !slices.Contains(missing, "PUT /access/acl") {
		t.Errorf("missing = %v...; want implemented methods left out", missing[:5])
	}
	sorted := slices.Clone(missing)
	SortKeys(sorted)
	if !slices.Equal(missing, sorted) {
		t.Errorf("missing is not in SortKeys order")
	}
}

func TestWriteCoverageReport(t *testing.T) {
	tree := pveTree(t)
	ours := subset(t, Flatten(tree), ourKeys...)
	var buf bytes.Buffer
	if err := WriteCoverageReport(&buf, ours, tree); err != nil {
		t.Fatalf("WriteCoverageReport: %v", err)
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	if want := "6 of 649 PVE API methods implemented"; first != want {
		t.Errorf("first line = %q; want %q", first, want)
	}
	golden(t, "testdata/coverage.golden", buf.Bytes())
}

func TestWriteCoverageReportEmpty(t *testing.T) {
	tree := pveTree(t)
	var buf bytes.Buffer
	if err := WriteCoverageReport(&buf, nil, tree); err != nil {
		t.Fatalf("WriteCoverageReport: %v", err)
	}
	for _, want := range []string{"0 of 649 PVE API methods implemented\n", "  /access 0/45\n", "  /version 0/1\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "Not in PVE schema") {
		t.Errorf("report has an empty 'Not in PVE schema' section")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteCoverageReportError(t *testing.T) {
	err := WriteCoverageReport(failWriter{}, nil, pveTree(t))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteCoverageReport error = %v; want the write error", err)
	}
}

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}
