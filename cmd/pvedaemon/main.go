// Command pvedaemon is the PVE API daemon: root, 127.0.0.1:85 only.
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/pvedaemon"
)

func main() {
	root := daemon.Command(pvedaemon.Spec())
	root.AddCommand(pvedaemon.SetupCommand())
	os.Exit(daemon.Execute(root))
}
