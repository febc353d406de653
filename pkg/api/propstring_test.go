package api

import (
	"maps"
	"strings"
	"testing"
)

// netFormat is a cut-down net[n] format of PVE (model default key, macaddr
// with the per-model key aliases, a boolean and a bounded integer).
func netFormat() PropertyFormat {
	return PropertyFormat{
		"model":    Str().Enums("virtio", "e1000").DefKey(),
		"macaddr":  Str().Pat(`[0-9A-F:]{17}`).Opt(),
		"virtio":   KeyAliasOf("macaddr", "model"),
		"e1000":    KeyAliasOf("macaddr", "model"),
		"firewall": Bool().Opt(),
		"tag":      Int().Range(1, 4094).Opt(),
		"hwaddr":   AliasOf("macaddr"),
	}
}

func TestParsePropertyString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		err  string
	}{
		{in: "virtio", want: map[string]string{"model": "virtio"}},
		{in: "virtio=BC:24:11:00:00:01,firewall=yes", want: map[string]string{"model": "virtio", "macaddr": "BC:24:11:00:00:01", "firewall": "1"}},
		{in: "e1000,hwaddr=BC:24:11:00:00:01,tag=5", want: map[string]string{"model": "e1000", "macaddr": "BC:24:11:00:00:01", "tag": "5"}},
		{in: "e1000,,", want: map[string]string{"model": "e1000"}},
		{in: "virtio,foo=1", err: "invalid key in comma-separated list property: foo"},
		{in: "virtio,e1000", err: "duplicate key in comma-separated list property: model"},
		{in: "virtio,tag=1,tag=2", err: "duplicate key in comma-separated list property: tag"},
		{in: "virtio=BC:24:11:00:00:01,e1000=BC:24:11:00:00:02", err: "key alias 'model' is already defined"},
		{in: "virtio,macaddr=BC:24:11:00:00:01,hwaddr=BC:24:11:00:00:02", err: "key 'macaddr' is already defined (via alias)"},
		{in: "virtio,tag=", err: "missing key in comma-separated list property"},
		{in: "firewall=1", err: "format error\nnet0.model: property is missing and it is not optional"},
		{in: "rtl,tag=0,firewall=maybe", err: "format error\nnet0.firewall: type check ('boolean') failed - got 'maybe'\nnet0.model: value 'rtl' does not have a value in the enumeration 'virtio, e1000'\nnet0.tag: value must have a minimum value of 1"},
	} {
		got, err := ParsePropertyString(netFormat(), tc.in, "net0")
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestNoDefaultKey(t *testing.T) {
	_, err := ParsePropertyString(PropertyFormat{"a": Str().Opt()}, "x", "p")
	if err == nil || !strings.Contains(err.Error(), "does not define a default key") {
		t.Fatalf("got %v", err)
	}
}

func TestIndexedAndPropertyParams(t *testing.T) {
	m := &Method{Params: map[string]*Schema{
		"net[n]": Str().Fmt(netFormat()).Opt().Indexed(4),
		"name":   Str().Opt(),
	}}
	for _, tc := range []struct {
		raw  rawParams
		errs []string // parameter names with errors
	}{
		{raw: rawParams{"net0": "virtio", "net3": "e1000,tag=3"}},
		{raw: rawParams{"net4": "virtio"}, errs: []string{"net4"}},
		{raw: rawParams{"net01": "virtio"}, errs: []string{"net01"}},
		{raw: rawParams{"net": "virtio"}, errs: []string{"net"}},
		{raw: rawParams{"net[n]": "virtio"}, errs: []string{"net[n]"}},
		{raw: rawParams{"net1": "virtio,bogus=1", "name": "x"}, errs: []string{"net1"}},
	} {
		out, perr := validate(m, tc.raw)
		if len(tc.errs) == 0 {
			if perr != nil {
				t.Errorf("%v: %v", tc.raw, perr)
			} else if len(out) != len(tc.raw) {
				t.Errorf("%v: got %v", tc.raw, out)
			}
			continue
		}
		if perr == nil {
			t.Errorf("%v: accepted", tc.raw)
			continue
		}
		for _, name := range tc.errs {
			if _, ok := perr.Errors[name]; !ok {
				t.Errorf("%v: no error for %s: %v", tc.raw, name, perr.Errors)
			}
		}
	}
}

func TestPrintPropertyString(t *testing.T) {
	for _, in := range []string{
		"virtio=BC:24:11:00:00:01,firewall=1,tag=5",
		"e1000,tag=4",
	} {
		f := netFormat()
		v, err := ParsePropertyString(f, in, "net0")
		if err != nil {
			t.Fatal(err)
		}
		out, err := PrintPropertyString(f, v)
		if err != nil || out != in {
			t.Errorf("%q printed as %q, %v", in, out, err)
		}
	}
	if _, err := PrintPropertyString(netFormat(), map[string]string{"model": "a,b"}); err == nil {
		t.Error("comma accepted")
	}
}
