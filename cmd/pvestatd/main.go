// Command pvestatd is the PVE status daemon: it collects the status of this
// node, its guests and storages, shares it with the cluster and keeps the
// merged view for pveproxy and pvedaemon.
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/pvestatd"
)

func main() {
	os.Exit(daemon.Execute(daemon.Command(pvestatd.Spec())))
}
