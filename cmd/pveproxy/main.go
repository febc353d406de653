// Command pveproxy is the PVE API proxy: HTTPS on port 8006, www-data.
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/pveproxy"
)

func main() {
	os.Exit(daemon.Execute(daemon.Command(pveproxy.Spec())))
}
