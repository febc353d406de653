// Command schemastrip writes a structure-only copy of PVE's API schema (the
// apidata.js tree converted to JSON): every description and
// verbose_description annotation is removed, everything else is kept, and the
// output is indented with one space and sorted by key so that it is
// deterministic and diffs well.
//
// Removal follows the schema's structure: a parameter or property that is
// itself named "description" (guest configs have one) is kept; only the
// annotation keys of nodes' methods, permissions and schemas are dropped.
//
// Usage:
//
//	go run ./tools/schemastrip -in ../shared/reference/pve-api-schema.json \
//		-out pkg/apischema/testdata/pve-api-schema.json
package main
