package apischema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const pveFile = "testdata/pve-api-schema.json"

// pveTree loads the stripped PVE schema from testdata.
func pveTree(t *testing.T) []*Node {
	t.Helper()
	nodes, err := LoadFile(pveFile)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", pveFile, err)
	}
	return nodes
}

func TestLoadPVE(t *testing.T) {
	nodes := pveTree(t)
	if got := Count(nodes); got != 649 {
		t.Errorf("Count = %d; want 649", got)
	}
	flat := Flatten(nodes)
	if got := len(flat); got != 649 {
		t.Errorf("len(Flatten) = %d; want 649", got)
	}
	for _, tt := range []struct {
		key       string
		protected bool
		token     bool
		proxyto   string
	}{
		{"GET /version", false, true, ""},
		{"POST /access/ticket", true, false, ""},
		{"GET /nodes/{node}/qemu/{vmid}/status/current", true, true, "node"},
	} {
		m := flat[tt.key]
		if m == nil {
			t.Errorf("Flatten lacks %q", tt.key)
			continue
		}
		if got := m.IsProtected(); got != tt.protected {
			t.Errorf("%s IsProtected = %v; want %v", tt.key, got, tt.protected)
		}
		if got := m.TokenAllowed(); got != tt.token {
			t.Errorf("%s TokenAllowed = %v; want %v", tt.key, got, tt.token)
		}
		if m.ProxyTo != tt.proxyto {
			t.Errorf("%s ProxyTo = %q; want %q", tt.key, m.ProxyTo, tt.proxyto)
		}
	}
	protected := 0
	for _, m := range flat {
		if m.IsProtected() {
			protected++
		}
	}
	if protected != 455 {
		t.Errorf("protected methods = %d; want 455", protected)
	}
}

func TestLoadPVEEmbedded(t *testing.T) {
	nodes, err := LoadPVE()
	if err != nil {
		t.Fatalf("LoadPVE: %v", err)
	}
	if got := Count(nodes); got != 649 {
		t.Errorf("Count(LoadPVE()) = %d; want 649", got)
	}
	if diffs := Compare(Flatten(nodes), Flatten(pveTree(t)), nil); len(diffs) != 0 {
		t.Errorf("embedded schema differs from %s: %v", pveFile, diffs[0])
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"not json", `[{`, "load api schema"},
		{"not a list", `{"path":"/x"}`, "cannot unmarshal"},
		{"trailing data", `[] []`, "trailing data"},
		{"bad verb", `[{"path":"/x","text":"x","leaf":1,"info":{"PATCH":{"method":"PATCH"}}}]`, "PATCH /x: not GET"},
		{"method mismatch", `[{"path":"/x","text":"x","leaf":1,"info":{"GET":{"method":"POST"}}}]`, `GET /x: method field says "POST"`},
		{"relative path", `[{"path":"x","text":"x","leaf":1}]`, "does not start with /"},
		{"duplicate path", `[{"path":"/x","text":"x","leaf":0,"children":[{"path":"/x","text":"x","leaf":1}]}]`, "node /x: path occurs twice"},
		{"bad boolean", `[{"path":"/x","text":"x","leaf":2}]`, "is not 0 or 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%s) error = %v; want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestLoadFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(path, []byte("[1]"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadFile error = %v; want it to name %s", err, path)
	}
}

func TestBool(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"1", true}, {"true", true}, {`"1"`, true},
		{"0", false}, {"false", false}, {`"0"`, false},
	} {
		var b Bool
		if err := json.Unmarshal([]byte(tt.in), &b); err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.in, err)
			continue
		}
		if bool(b) != tt.want {
			t.Errorf("Unmarshal(%s) = %v; want %v", tt.in, b, tt.want)
		}
	}
	got, err := json.Marshal(struct {
		A Bool
		B *Bool `json:",omitempty"`
		C *Bool `json:",omitempty"`
	}{A: true, B: NewBool(false)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"A":1,"B":0}`; string(got) != want {
		t.Errorf("Marshal = %s; want %s", got, want)
	}
	var nilB *Bool
	if !nilB.Value(true) || nilB.Value(false) {
		t.Errorf("nil Bool Value does not return its default")
	}
}

func TestMethodJSONRoundTrip(t *testing.T) {
	in := `{"allowtoken":0,"custom_flag":1,"method":"POST","name":"x","parameters":{"additionalProperties":0},` +
		`"permissions":{"user":"all"},"protected":1,"proxyto":"node","returns":{"type":"null"}}`
	var m Method
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if want := map[string]any{"custom_flag": json.Number("1")}; !reflect.DeepEqual(m.Extra, want) {
		t.Errorf("Extra = %#v; want %#v", m.Extra, want)
	}
	out, err := json.Marshal(&m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s", out, in)
	}
	m.Extra["proxyto"] = "x"
	if _, err := json.Marshal(&m); err == nil {
		t.Errorf("Marshal with an Extra key shadowing a field succeeded")
	}
}

func TestSortKeys(t *testing.T) {
	got := []string{"DELETE /a", "GET /b", "PUT /a", "GET /a", "POST /a", "GET /a/b"}
	SortKeys(got)
	want := []string{"GET /a", "POST /a", "PUT /a", "DELETE /a", "GET /a/b", "GET /b"}
	if !slices.Equal(got, want) {
		t.Errorf("SortKeys = %v; want %v", got, want)
	}
}
