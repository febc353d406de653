// Package api is the method framework of the PVE API: every method is declared
// once as a Method value with its schema (path template, HTTP method,
// parameters, return schema, permissions, protected and proxyto flags), and
// the package turns a table of them into an http.Handler that parses and
// validates parameters the way PVE's JSONSchema does, authenticates,
// checks permissions, forwards protected calls from pveproxy to pvedaemon and
// renders PVE's /api2/json and /api2/extjs envelopes.
//
// The same declarations are dumped as a schema tree in the shape of PVE's API
// viewer data (Dump), which the conformance test compares with PVE's own.
package api
