// Command pvenode-tool holds the helper commands: the API schema dump and
// the coverage report against PVE's schema, and the cluster commands (the
// equivalents of pvecm create, addnode, delnode, nodes, status and
// updatecerts; see docs/cluster.md).
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pvenode/pvenode/pkg/api2/tree"
	"github.com/pvenode/pvenode/pkg/apischema"
)

func main() {
	os.Exit(run())
}

func run() int {
	root := &cobra.Command{Use: "pvenode-tool", Short: "pvenode build helpers", SilenceUsage: true}
	root.AddCommand(&cobra.Command{
		Use:   "api-dump",
		Short: "print the API schema of this build as JSON (PVE API viewer shape)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return tree.Registry(tree.Deps{}).WriteDump(os.Stdout)
		},
	})
	var pvePath string
	cov := &cobra.Command{
		Use:   "api-coverage",
		Short: "print how many of PVE's API methods this build implements",
		RunE: func(cmd *cobra.Command, args []string) error {
			pve, err := apischema.LoadFile(pvePath)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := tree.Registry(tree.Deps{}).WriteDump(&buf); err != nil {
				return err
			}
			ours, err := apischema.Load(&buf)
			if err != nil {
				return fmt.Errorf("load our schema: %w", err)
			}
			return apischema.WriteCoverageReport(os.Stdout, ours, pve)
		},
	}
	cov.Flags().StringVar(&pvePath, "pve-schema", "pkg/apischema/testdata/pve-api-schema.json", "PVE's API schema (JSON)")
	root.AddCommand(cov)
	root.AddCommand(clusterCommand())
	if err := root.Execute(); err != nil {
		return 1
	}
	return 0
}
