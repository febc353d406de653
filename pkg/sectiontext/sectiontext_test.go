package sectiontext

import (
	"reflect"
	"testing"
)

// The text rules: comments anywhere, a section ends at a truly empty line
// (not at a blank one), body lines need leading white space, stray lines
// outside sections are reported with their numbers.
func TestScan(t *testing.T) {
	data := "# top\n" + //1
		"dir: local\n" + //2
		"\tpath /var/lib/vz\n" + //3
		"  # comment inside\n" + //4
		"\tdisable\n" + //5
		"nokey\n" + //6 (no leading white space: malformed body line)
		" \n" + //7 (blank, not empty: malformed body line)
		"\n" + //8
		"stray line\n" + //9
		"nfs:   backup  \n" + //10
		"\tserver 10.0.0.1\n" //11 (file ends inside the section)
	secs, stray := Scan([]byte(data))
	want := []Section{
		{Type: "dir", ID: "local", Line: 2, Body: []Option{
			{Line: Line{3, "\tpath /var/lib/vz"}, Key: "path", Value: "/var/lib/vz", HasValue: true, OK: true},
			{Line: Line{5, "\tdisable"}, Key: "disable", OK: true},
			{Line: Line{6, "nokey"}},
			{Line: Line{7, " "}},
		}},
		{Type: "nfs", ID: "backup", Line: 10, Body: []Option{
			{Line: Line{11, "\tserver 10.0.0.1"}, Key: "server", Value: "10.0.0.1", HasValue: true, OK: true},
		}},
	}
	if !reflect.DeepEqual(secs, want) {
		t.Errorf("sections\n got %+v\nwant %+v", secs, want)
	}
	if !reflect.DeepEqual(stray, []Line{{9, "stray line"}}) {
		t.Errorf("stray %+v", stray)
	}
}
