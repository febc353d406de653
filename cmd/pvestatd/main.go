// Command pvestatd is the PVE pvestatd daemon. Its lifecycle commands work; its
// own work is not implemented yet: status collection and cluster gossip (issue 5).
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/pending"
)

func main() {
	os.Exit(daemon.Execute(daemon.Command(daemon.Spec{
		Name:  "pvestatd",
		Short: "PVE pvestatd (not implemented yet: status collection and cluster gossip (issue 5))",
		New:   pending.New("status collection and cluster gossip (issue 5)"),
	})))
}
