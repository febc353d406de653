// Command pvescheduler is the PVE pvescheduler daemon. Its lifecycle commands work; its
// own work is not implemented yet: job scheduling (issue 7).
package main

import (
	"os"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/service/pending"
)

func main() {
	os.Exit(daemon.Execute(daemon.Command(daemon.Spec{
		Name:  "pvescheduler",
		Short: "PVE pvescheduler (not implemented yet: job scheduling (issue 7))",
		New:   pending.New("job scheduling (issue 7)"),
	})))
}
