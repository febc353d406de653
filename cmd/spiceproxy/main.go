// Command spiceproxy is the PVE spiceproxy daemon. Its lifecycle commands work; its
// own work is not implemented yet: SPICE CONNECT proxy (issue 6).
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/pending"
)

func main() {
	os.Exit(daemon.Execute(daemon.Command(daemon.Spec{
		Name:  "spiceproxy",
		Short: "PVE spiceproxy (not implemented yet: SPICE CONNECT proxy (issue 6))",
		New:   pending.New("SPICE CONNECT proxy (issue 6)"),
	})))
}
