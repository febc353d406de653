package pvetext

import "testing"

func TestEncodeDecode(t *testing.T) {
	for _, tc := range []struct{ plain, encoded string }{
		{"nightly: all", "nightly%3A all"},
		{"50% Ü\n", "50%25 %C3%9C%0A"},
		{"tab\tdel\x7f", "tab%09del%7F"},
		{"plain text, (ok)!", "plain text, (ok)!"},
	} {
		if got := Encode(tc.plain); got != tc.encoded {
			t.Errorf("Encode(%q) = %q, want %q", tc.plain, got, tc.encoded)
		}
		if got := Decode(tc.encoded); got != tc.plain {
			t.Errorf("Decode(%q) = %q, want %q", tc.encoded, got, tc.plain)
		}
	}
	// malformed escapes stay; invalid UTF-8 becomes U+FFFD; '+' is kept
	for in, want := range map[string]string{"100%": "100%", "%zz%4": "%zz%4", "%FF": "\uFFFD", "a+b": "a+b", "%41": "A"} {
		if got := Decode(in); got != want {
			t.Errorf("Decode(%q) = %q, want %q", in, got, want)
		}
	}
}
