// Package api2 groups the API method declarations; each sub-package declares
// the methods of one part of the tree, mounted by both pveproxy and pvedaemon.
package api2
