// Command pvescheduler is the PVE job scheduler: it runs the backup jobs of
// /etc/pve/jobs.cfg on their calendar events.
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/pvescheduler"
)

func main() {
	os.Exit(daemon.Execute(daemon.Command(pvescheduler.Spec())))
}
