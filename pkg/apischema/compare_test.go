package apischema

import (
	"encoding/json"
	"errors"
	"io/fs"
	"reflect"
	"slices"
	"testing"
)

// fullReference is the unstripped schema in the shared reference checkout; the
// test that uses it is skipped when it is not there.
const fullReference = "../../../shared/reference/pve-api-schema.json"

// clone deep-copies a method through its JSON form.
func clone(t *testing.T, m *Method) *Method {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal method: %v", err)
	}
	var out Method
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("unmarshal method: %v", err)
	}
	return &out
}

// obj walks a decoded schema by keys, failing the test when one is missing.
func obj(t *testing.T, v any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("obj: %q: parent is %T, not an object", k, v)
		}
		v = m[k]
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("obj %v: got %T, not an object", keys, v)
	}
	return m
}

func lines(ds []Difference) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func TestCompareSelf(t *testing.T) {
	a, b := Flatten(pveTree(t)), Flatten(pveTree(t))
	if diffs := Compare(a, b, nil); len(diffs) != 0 {
		t.Errorf("Compare(PVE, PVE) = %d differences; want 0; first: %v", len(diffs), diffs[0])
	}
}

func TestCompareFullReference(t *testing.T) {
	full, err := LoadFile(fullReference)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not present", fullReference)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Count(full), Count(pveTree(t)); got != want {
		t.Errorf("Count(full) = %d; want %d", got, want)
	}
	// Descriptions are ignored, so the full schema matches the stripped one.
	if diffs := Compare(Flatten(full), Flatten(pveTree(t)), nil); len(diffs) != 0 {
		t.Errorf("Compare(full, stripped) = %d differences; want 0; first: %v", len(diffs), diffs[0])
	}
}

const (
	ticket = "POST /access/ticket"
	status = "GET /nodes/{node}/qemu/{vmid}/status/current"
	start  = "POST /nodes/{node}/qemu/{vmid}/status/start"
	vers   = "GET /version"
)

func TestCompareDetects(t *testing.T) {
	pve := Flatten(pveTree(t))
	for _, tt := range []struct {
		name   string
		key    string
		mutate func(t *testing.T, m *Method)
		want   []string
	}{
		{"param type", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "username")["type"] = "integer"
		}, []string{`POST /access/ticket parameters.properties.username.type: ours "integer", PVE "string"`}},
		{"param dropped", ticket, func(t *testing.T, m *Method) {
			delete(obj(t, m.Parameters, "properties"), "otp")
		}, []string{`POST /access/ticket parameters.properties.otp: ours (absent), PVE {"optional":1,"type":"string"}`}},
		{"param added", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties")["extra"] = map[string]any{"type": "string", "description": "x"}
		}, []string{`POST /access/ticket parameters.properties.extra: ours {"type":"string"}, PVE (absent)`}},
		{"param optional", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "username")["optional"] = 1
		}, []string{`POST /access/ticket parameters.properties.username.optional: ours 1, PVE (absent)`}},
		{"param default", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "new-format")["default"] = 0
		}, []string{`POST /access/ticket parameters.properties.new-format.default: ours 0, PVE 1`}},
		{"param requires", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "path")["requires"] = "otp"
		}, []string{`POST /access/ticket parameters.properties.path.requires: ours "otp", PVE "privs"`}},
		{"param minimum", status, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "vmid")["minimum"] = 1
		}, []string{`GET /nodes/{node}/qemu/{vmid}/status/current parameters.properties.vmid.minimum: ours 1, PVE 100`}},
		{"param format string", status, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "node")["format"] = "pve-configid"
		}, []string{`GET /nodes/{node}/qemu/{vmid}/status/current parameters.properties.node.format: ours "pve-configid", PVE "pve-node"`}},
		{"param format object", start, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "machine", "format", "viommu")["enum"] = []any{"intel", "virtio", "amd"}
		}, []string{`POST /nodes/{node}/qemu/{vmid}/status/start parameters.properties.machine.format.viommu.enum: ours ["intel","virtio","amd"], PVE ["intel","virtio"]`}},
		{"additionalProperties dropped", ticket, func(t *testing.T, m *Method) {
			delete(m.Parameters, "additionalProperties")
		}, []string{`POST /access/ticket parameters.additionalProperties: ours (absent), PVE 0`}},
		{"protected flipped", ticket, func(t *testing.T, m *Method) {
			m.Protected = NewBool(false)
		}, []string{`POST /access/ticket protected: ours 0, PVE 1`}},
		{"allowtoken absent means 1", ticket, func(t *testing.T, m *Method) {
			m.AllowToken = nil
		}, []string{`POST /access/ticket allowtoken: ours 1, PVE 0`}},
		{"proxyto", status, func(t *testing.T, m *Method) {
			m.ProxyTo = ""
		}, []string{`GET /nodes/{node}/qemu/{vmid}/status/current proxyto: ours (absent), PVE "node"`}},
		{"download_allowed", vers, func(t *testing.T, m *Method) {
			m.DownloadAllowed = NewBool(true)
		}, []string{`GET /version download_allowed: ours 1, PVE 0`}},
		{"unknown method key", vers, func(t *testing.T, m *Method) {
			m.Extra = map[string]any{"download": 1}
		}, []string{`GET /version download: ours 1, PVE (absent)`}},
		{"permissions", status, func(t *testing.T, m *Method) {
			m.Permissions = map[string]any{"check": []any{"perm", "/vms/{vmid}", []any{"VM.PowerMgmt"}}}
		}, []string{`GET /nodes/{node}/qemu/{vmid}/status/current permissions.check: ours ["perm","/vms/{vmid}",["VM.PowerMgmt"]], PVE ["perm","/vms/{vmid}",["VM.Audit"]]`}},
		{"permissions dropped", vers, func(t *testing.T, m *Method) {
			m.Permissions = nil
		}, []string{`GET /version permissions: ours (absent), PVE {"user":"all"}`}},
		{"return property type", status, func(t *testing.T, m *Method) {
			obj(t, m.Returns, "properties", "cpu")["type"] = "integer"
		}, []string{`GET /nodes/{node}/qemu/{vmid}/status/current returns.properties.cpu.type: ours "integer", PVE "number"`}},
		{"return property dropped", status, func(t *testing.T, m *Method) {
			delete(obj(t, m.Returns, "properties"), "ha")
		}, []string{`GET /nodes/{node}/qemu/{vmid}/status/current returns.properties.ha: ours (absent), PVE {"type":"object"}`}},
		{"return optional", ticket, func(t *testing.T, m *Method) {
			delete(obj(t, m.Returns, "properties", "ticket"), "optional")
		}, []string{`POST /access/ticket returns.properties.ticket.optional: ours (absent), PVE 1`}},
		{"return type", vers, func(t *testing.T, m *Method) {
			m.Returns["type"] = "array"
		}, []string{`GET /version returns.type: ours "array", PVE "object"`}},
		{"several at once, in order", ticket, func(t *testing.T, m *Method) {
			m.Protected = nil
			obj(t, m.Parameters, "properties", "realm")["maxLength"] = 33
			obj(t, m.Returns, "properties", "username")["type"] = "integer"
		}, []string{
			`POST /access/ticket protected: ours 0, PVE 1`,
			`POST /access/ticket parameters.properties.realm.maxLength: ours 33, PVE 32`,
			`POST /access/ticket returns.properties.username.type: ours "integer", PVE "string"`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := clone(t, pve[tt.key])
			tt.mutate(t, m)
			got := lines(Compare(map[string]*Method{tt.key: m}, pve, nil))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Compare:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCompareMissingMethod(t *testing.T) {
	pve := Flatten(pveTree(t))
	ours := map[string]*Method{"GET /nope": {Method: "GET"}, vers: pve[vers]}
	got := Compare(ours, pve, nil)
	want := []Difference{{Method: "GET /nope", Note: NoteNotInPVE}}
	if !slices.Equal(got, want) {
		t.Errorf("Compare = %v; want %v", got, want)
	}
	if s := got[0].String(); s != "GET /nope: not in PVE schema" {
		t.Errorf("String = %q", s)
	}
}

// TestCompareEquivalent checks the documented equivalences: none of these
// changes is a difference.
func TestCompareEquivalent(t *testing.T) {
	pve := Flatten(pveTree(t))
	for _, tt := range []struct {
		name   string
		key    string
		mutate func(t *testing.T, m *Method)
	}{
		{"descriptions", ticket, func(t *testing.T, m *Method) {
			m.Description = "ours"
			m.Permissions["description"] = "ours"
			p := obj(t, m.Parameters, "properties", "username")
			p["description"], p["verbose_description"], p["typetext"] = "a", "b", "c"
			p["title"], p["format_description"] = "d", "e"
		}},
		{"internal name", ticket, func(t *testing.T, m *Method) { m.Name = "login" }},
		{"true and 1", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "otp")["optional"] = true
			obj(t, m.Parameters, "properties", "new-format")["default"] = true
			m.Parameters["additionalProperties"] = false
		}},
		{"numeric strings", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "otp")["optional"] = "1"
			obj(t, m.Parameters, "properties", "realm")["maxLength"] = "32"
		}},
		{"optional 0 is absent", ticket, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "username")["optional"] = 0
		}},
		{"protected 0 is absent", vers, func(t *testing.T, m *Method) { m.Protected = NewBool(false) }},
		{"allowtoken 1 is absent", vers, func(t *testing.T, m *Method) { m.AllowToken = nil }},
		{"parameters type object is absent", ticket, func(t *testing.T, m *Method) {
			m.Parameters["type"] = "object"
		}},
		{"enum order", start, func(t *testing.T, m *Method) {
			obj(t, m.Parameters, "properties", "migration_type")["enum"] = []string{"insecure", "secure"}
		}},
		{"return presentation", status, func(t *testing.T, m *Method) {
			p := obj(t, m.Returns, "properties", "clipboard")
			p["enum"], p["renderer"], p["title"] = []any{"vnc", "spice"}, "x", "y"
			obj(t, m.Returns, "properties", "cpu")["minimum"] = 0
		}},
		{"go values", status, func(t *testing.T, m *Method) {
			m.Permissions = map[string]any{"check": []any{"perm", "/vms/{vmid}", []string{"VM.Audit"}}}
			m.Parameters = map[string]any{
				"additionalProperties": false,
				"properties": map[string]any{
					"node": map[string]any{"type": "string", "format": "pve-node"},
					"vmid": map[string]any{"type": "integer", "format": "pve-vmid", "minimum": 100,
						"maximum": int64(999999999), "optional": false},
				},
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := clone(t, pve[tt.key])
			tt.mutate(t, m)
			if got := Compare(map[string]*Method{tt.key: m}, pve, nil); len(got) != 0 {
				t.Errorf("Compare = %q; want no differences", lines(got))
			}
		})
	}
}

func TestCompareUnencodable(t *testing.T) {
	pve := Flatten(pveTree(t))
	m := clone(t, pve[vers])
	m.Parameters = map[string]any{"bad": make(chan int)}
	got := Compare(map[string]*Method{vers: m}, pve, nil)
	if len(got) != 1 || got[0].Field != "parameters" || got[0].Note == "" {
		t.Errorf("Compare = %q; want one note on parameters", lines(got))
	}
}

func TestEqual(t *testing.T) {
	for _, tt := range []struct {
		a, b any
		want bool
	}{
		{json.Number("1"), true, true},
		{json.Number("0"), false, true},
		{"1", json.Number("1"), true},
		{"1", true, true},
		{"1", "1.0", false},
		{"yes", true, false},
		{json.Number("1.5"), 1.5, true},
		{nil, nil, true},
		{nil, "", false},
		{missing{}, nil, false},
		{[]any{"a", json.Number("1")}, []any{"a", true}, true},
		{[]any{"a"}, []any{"a", "b"}, false},
		{map[string]any{"x": "1"}, map[string]any{"x": json.Number("1")}, true},
		{map[string]any{"x": "1"}, map[string]any{"y": "1"}, false},
		{map[string]any{}, []any{}, false},
	} {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%#v, %#v) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Equal(tt.b, tt.a); got != tt.want {
			t.Errorf("Equal(%#v, %#v) = %v; want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestTruthy(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want bool
	}{
		{nil, false}, {missing{}, false}, {false, false}, {json.Number("0"), false},
		{"", false}, {"0", false}, {true, true}, {json.Number("1"), true}, {"1", true}, {"yes", true},
	} {
		if got := Truthy(tt.v); got != tt.want {
			t.Errorf("Truthy(%#v) = %v; want %v", tt.v, got, tt.want)
		}
	}
}

func TestRenderTruncates(t *testing.T) {
	long := make([]byte, 500)
	for i := range long {
		long[i] = 'x'
	}
	got := render(string(long))
	if len([]rune(got)) > maxRender+1 {
		t.Errorf("render length = %d runes; want at most %d", len([]rune(got)), maxRender+1)
	}
}

// TestCompareLeavesInputs checks that Compare does not edit the methods it is
// given, although it shares decoded values instead of copying them.
func TestCompareLeavesInputs(t *testing.T) {
	pve := Flatten(pveTree(t))
	ours := clone(t, pve[ticket])
	ours.Permissions["description"] = "kept"
	before := clone(t, ours)
	pveBefore := clone(t, pve[ticket])
	Compare(map[string]*Method{ticket: ours}, pve, nil)
	if !reflect.DeepEqual(ours, before) {
		t.Errorf("Compare changed our method:\n got %+v\nwant %+v", ours, before)
	}
	if !reflect.DeepEqual(pve[ticket], pveBefore) {
		t.Errorf("Compare changed PVE's method:\n got %+v\nwant %+v", pve[ticket], pveBefore)
	}
}
