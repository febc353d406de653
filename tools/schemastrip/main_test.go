package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	// fullReference is PVE's schema in the shared reference checkout.
	fullReference = "../../../shared/reference/pve-api-schema.json"
	// stripped is the committed output of this tool.
	stripped = "../../pkg/apischema/testdata/pve-api-schema.json"
)

func TestStrip(t *testing.T) {
	in := `[{"path":"/n","text":"n","leaf":0,"info":{"PUT":{"method":"PUT","description":"Set config.",
"permissions":{"description":"Needs VM.Config.","check":["perm","/vms/{vmid}",["VM.Config.Options"]]},
"parameters":{"additionalProperties":0,"properties":{
 "description":{"type":"string","description":"Notes.","maxLength":8192},
 "net0":{"type":"string","verbose_description":"Long text.","typetext":"<a&b>","format":{
   "description":{"type":"string","description":"Inner."},
   "model":{"type":"string","enum":["e1000"],"description":"Model."}}},
 "list":{"type":"array","items":{"type":"string","description":"Item."}},
 "alt":{"oneOf":[{"type":"string","description":"One."}],"type-property":"t"}}},
"returns":{"type":"object","description":"Result.","additionalProperties":{"type":"integer","description":"N."},
 "properties":{"description":{"type":"string","optional":1,"description":"Notes."},"big":{"type":"number","minimum":1.50}}}}},
"children":[{"path":"/n/c","text":"c","leaf":1,"info":{"GET":{"method":"GET","description":"Child.","returns":{"type":"null"}}}}]}]`
	got, err := strip([]byte(in))
	if err != nil {
		t.Fatalf("strip: %v", err)
	}
	want := `[
 {
  "children": [
   {
    "info": {
     "GET": {
      "method": "GET",
      "returns": {
       "type": "null"
      }
     }
    },
    "leaf": 1,
    "path": "/n/c",
    "text": "c"
   }
  ],
  "info": {
   "PUT": {
    "method": "PUT",
    "parameters": {
     "additionalProperties": 0,
     "properties": {
      "alt": {
       "oneOf": [
        {
         "type": "string"
        }
       ],
       "type-property": "t"
      },
      "description": {
       "maxLength": 8192,
       "type": "string"
      },
      "list": {
       "items": {
        "type": "string"
       },
       "type": "array"
      },
      "net0": {
       "format": {
        "description": {
         "type": "string"
        },
        "model": {
         "enum": [
          "e1000"
         ],
         "type": "string"
        }
       },
       "type": "string",
       "typetext": "<a&b>"
      }
     }
    },
    "permissions": {
     "check": [
      "perm",
      "/vms/{vmid}",
      [
       "VM.Config.Options"
      ]
     ]
    },
    "returns": {
     "additionalProperties": {
      "type": "integer"
     },
     "properties": {
      "big": {
       "minimum": 1.50,
       "type": "number"
      },
      "description": {
       "optional": 1,
       "type": "string"
      }
     },
     "type": "object"
    }
   }
  },
  "leaf": 0,
  "path": "/n",
  "text": "n"
 }
]
`
	if string(got) != want {
		t.Errorf("strip:\n got:\n%s\nwant:\n%s", got, want)
	}
	again, err := strip(got)
	if err != nil {
		t.Fatalf("strip of its own output: %v", err)
	}
	if !bytes.Equal(again, got) {
		t.Errorf("strip is not idempotent")
	}
}

func TestStripErrors(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"not json", `[`, "decode schema"},
		{"not a list", `{}`, "not a list of nodes"},
		{"trailing data", `[] x`, "trailing data"},
		{"node not object", `[1]`, `child 0 of "": not an object`},
		{"method not object", `[{"path":"/a","info":{"GET":1}}]`, "GET /a: method is not an object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := strip([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("strip(%s) error = %v; want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	out := filepath.Join(dir, "out.json")
	if err := os.WriteFile(in, []byte(`[{"path":"/v","text":"v","leaf":1,"info":{"GET":{"description":"x","method":"GET"}}}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-in", in, "-out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d; stderr: %s", code, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("description")) || !bytes.Contains(data, []byte(`"path": "/v"`)) {
		t.Errorf("output:\n%s", data)
	}
	stdout.Reset()
	if code := run([]string{"-in", in}, &stdout, &stderr); code != 0 || !bytes.Equal(stdout.Bytes(), data) {
		t.Errorf("run without -out = %d, wrote %q; want the same output on stdout", code, stdout.String())
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"-in", filepath.Join(dir, "none.json")}, 1, "none.json"},
		{[]string{"-bogus"}, 2, "bogus"},
	} {
		stderr.Reset()
		if code := run(tt.args, &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}

// TestCommittedCopyIsCurrent checks that pkg/apischema's testdata is this
// tool's output for the reference schema, when the reference is present.
func TestCommittedCopyIsCurrent(t *testing.T) {
	src, err := os.ReadFile(fullReference)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not present", fullReference)
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := strip(src)
	if err != nil {
		t.Fatalf("strip: %v", err)
	}
	want, err := os.ReadFile(stripped)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale; regenerate it with: go run ./tools/schemastrip -in %s -out %s",
			stripped, "../shared/reference/pve-api-schema.json", "pkg/apischema/testdata/pve-api-schema.json")
	}
}
