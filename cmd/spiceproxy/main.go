// Command spiceproxy is the PVE SPICE proxy: HTTP CONNECT on port 3128,
// www-data.
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/spiceproxy"
)

func main() {
	os.Exit(daemon.Execute(daemon.Command(spiceproxy.Spec())))
}
