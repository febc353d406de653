package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("schemastrip", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "PVE API schema as JSON (apidata.js converted)")
	out := fs.String("out", "", "output file; standard output when empty")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *in == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: schemastrip -in SCHEMA.json [-out STRIPPED.json]")
		return 2
	}
	src, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintf(stderr, "schemastrip: %v\n", err)
		return 1
	}
	data, err := strip(src)
	if err != nil {
		fmt.Fprintf(stderr, "schemastrip: %s: %v\n", *in, err)
		return 1
	}
	if *out == "" {
		if _, err := stdout.Write(data); err != nil {
			fmt.Fprintf(stderr, "schemastrip: write output: %v\n", err)
			return 1
		}
		return 0
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintf(stderr, "schemastrip: %v\n", err)
		return 1
	}
	return 0
}

// strip decodes a schema tree, removes its description texts and encodes it
// again with sorted keys and one-space indentation. Numbers keep their
// original text.
func strip(src []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("decode schema: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode schema: trailing data after the top-level value")
	}
	nodes, ok := tree.([]any)
	if !ok {
		return nil, errors.New("decode schema: top level is not a list of nodes")
	}
	if err := stripNodes(nodes, ""); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(nodes); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

// dropDocs removes the annotation keys that hold free text.
func dropDocs(m map[string]any) {
	delete(m, "description")
	delete(m, "verbose_description")
}

func stripNodes(nodes []any, parent string) error {
	for i, n := range nodes {
		node, ok := n.(map[string]any)
		if !ok {
			return fmt.Errorf("child %d of %q: not an object", i, parent)
		}
		path, _ := node["path"].(string)
		if info, ok := node["info"].(map[string]any); ok {
			for verb, m := range info {
				method, ok := m.(map[string]any)
				if !ok {
					return fmt.Errorf("%s %s: method is not an object", verb, path)
				}
				dropDocs(method)
				if perm, ok := method["permissions"].(map[string]any); ok {
					dropDocs(perm)
				}
				stripSchema(method["parameters"])
				stripSchema(method["returns"])
			}
		}
		if children, ok := node["children"].([]any); ok {
			if err := stripNodes(children, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// stripSchema removes the annotations of one schema and of the schemas nested
// in it. Maps of named sub-schemas (properties, object-valued format) are
// walked by value so that a property called "description" survives.
func stripSchema(v any) {
	s, ok := v.(map[string]any)
	if !ok {
		return
	}
	dropDocs(s)
	for _, k := range [...]string{"properties", "format"} {
		if named, ok := s[k].(map[string]any); ok {
			for _, sub := range named {
				stripSchema(sub)
			}
		}
	}
	for _, k := range [...]string{"items", "additionalProperties", "requires", "extends"} {
		stripSchema(s[k])
	}
	if alts, ok := s["oneOf"].([]any); ok {
		for _, alt := range alts {
			stripSchema(alt)
		}
	}
}
