package apischema

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseDeviations(t *testing.T) {
	in := `# deliberate differences
GET /version returns.properties.repoid   we report our own build id

POST /access/ticket .  login is handled by a realm plugin of ours
  PUT /nodes/{node}/config parameters.properties.description.maxLength  longer notes
`
	got, err := ParseDeviations("dev.txt", []byte(in))
	if err != nil {
		t.Fatalf("ParseDeviations: %v", err)
	}
	want := Deviations{
		{Method: "GET /version", Field: "returns.properties.repoid", Reason: "we report our own build id", Source: "dev.txt:2"},
		{Method: "POST /access/ticket", Field: ".", Reason: "login is handled by a realm plugin of ours", Source: "dev.txt:4"},
		{Method: "PUT /nodes/{node}/config", Field: "parameters.properties.description.maxLength", Reason: "longer notes", Source: "dev.txt:5"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParseDeviations:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseDeviationsErrors(t *testing.T) {
	in := `GET /version returns.type
FETCH /version returns.type why
GET version returns.type why
GET /version .returns why
GET /x
GET /version protected first
GET /version protected second
`
	_, err := ParseDeviations("dev.txt", []byte(in))
	if err == nil {
		t.Fatal("ParseDeviations succeeded; want errors")
	}
	for _, want := range []string{
		"dev.txt:1: deviation GET /version returns.type has no reason",
		`dev.txt:2: method "FETCH" is not GET, POST, PUT or DELETE`,
		`dev.txt:3: path "version" does not start with /`,
		`dev.txt:4: field path ".returns" starts or ends with a dot`,
		"dev.txt:5: expected METHOD /path field-path reason",
		"dev.txt:7: deviation GET /version protected repeats dev.txt:6",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
}

func TestLoadDeviations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deviations.txt")
	if err := os.WriteFile(path, []byte("GET /version protected because\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadDeviations(path)
	if err != nil {
		t.Fatalf("LoadDeviations: %v", err)
	}
	if len(got) != 1 || got[0].Source != path+":1" {
		t.Errorf("LoadDeviations = %+v; want one entry from %s:1", got, path)
	}
	if _, err := LoadDeviations(filepath.Join(t.TempDir(), "none.txt")); err == nil {
		t.Errorf("LoadDeviations of a missing file succeeded")
	}
}

// TestDeviationsFile checks that the project's deviation list parses.
func TestDeviationsFile(t *testing.T) {
	if _, err := LoadDeviations("testdata/deviations.txt"); err != nil {
		t.Errorf("LoadDeviations: %v", err)
	}
}

func TestDeviationMatches(t *testing.T) {
	diff := Difference{Method: "GET /a", Field: "parameters.properties.vmid.type"}
	for _, tt := range []struct {
		field string
		want  bool
	}{
		{"parameters.properties.vmid.type", true},
		{"parameters.properties.vmid", true},
		{"parameters", true},
		{".", true},
		{"parameters.properties.vm", false},
		{"parameters.properties.vmid.type.x", false},
	} {
		dv := Deviation{Method: "GET /a", Field: tt.field, Reason: "r"}
		if got := dv.Matches(diff); got != tt.want {
			t.Errorf("Deviation{Field: %q}.Matches(%s) = %v; want %v", tt.field, diff.Field, got, tt.want)
		}
	}
	if (Deviation{Method: "POST /a", Field: "."}).Matches(diff) {
		t.Errorf("deviation of another method matches")
	}
}

func TestCompareDeviations(t *testing.T) {
	pve := Flatten(pveTree(t))
	m := clone(t, pve[ticket])
	m.Protected = NewBool(false)
	obj(t, m.Parameters, "properties", "realm")["maxLength"] = 33
	obj(t, m.Parameters, "properties", "realm")["pattern"] = "[a-z]+"
	obj(t, m.Returns, "properties", "username")["type"] = "integer"
	ours := map[string]*Method{ticket: m, "GET /ours": {Method: "GET"}}

	for _, tt := range []struct {
		name    string
		allowed Deviations
		want    []string
	}{
		{"none", nil, []string{
			`POST /access/ticket protected: ours 0, PVE 1`,
			`POST /access/ticket parameters.properties.realm.maxLength: ours 33, PVE 32`,
			`POST /access/ticket parameters.properties.realm.pattern: ours "[a-z]+", PVE (absent)`,
			`POST /access/ticket returns.properties.username.type: ours "integer", PVE "string"`,
			`GET /ours: not in PVE schema`,
		}},
		{"exact, prefix and whole method", Deviations{
			{Method: ticket, Field: "protected", Reason: "r1"},
			{Method: ticket, Field: "parameters.properties.realm", Reason: "r2"},
			{Method: "GET /ours", Field: ".", Reason: "r3"},
		}, []string{
			`POST /access/ticket returns.properties.username.type: ours "integer", PVE "string"`,
		}},
		{"whole method excuses all its fields", Deviations{
			{Method: ticket, Field: ".", Reason: "r"},
			{Method: "GET /ours", Field: ".", Reason: "r"},
		}, nil},
		{"unused and reasonless entries are reported", Deviations{
			{Method: ticket, Field: ".", Reason: "r"},
			{Method: "GET /ours", Field: ".", Reason: "r"},
			{Method: ticket, Field: "parameters.properties.otp", Reason: "stale", Source: "dev.txt:9"},
			{Method: vers, Field: "returns", Reason: "also stale"},
			{Method: "GET /ours", Field: "protected", Reason: " "},
		}, []string{
			`POST /access/ticket parameters.properties.otp: unused deviation (dev.txt:9): stale`,
			`GET /version returns: unused deviation (deviation table): also stale`,
			`GET /ours protected: deviation without a reason (deviation table)`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := lines(Compare(ours, pve, tt.allowed))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Compare:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
