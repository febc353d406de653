package pvedaemon

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/setup"
)

// SetupCommand returns `pvedaemon setup`: create what is missing of the
// config root (CA, node certificates, ticket keys, user.cfg, domains.cfg) and,
// with --admin, an administrator whose password is printed once. It is what
// `make run` calls for the embedded one-node installation; pvedaemon start
// does the same without creating an administrator.
func SetupCommand() *cobra.Command {
	var node, admin string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "initialise the config root of this node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := daemon.PathsOf(cmd)
			if err != nil {
				return err
			}
			root, err := pvefs.Open(paths.ConfigRoot)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			res, err := setup.Ensure(cmd.Context(), root, setup.Options{NodeName: node, AdminUser: admin, Log: log})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "node: %s\nconfig root: %s\nfingerprint: %s\n", res.NodeName, root.Dir(), res.NodeFingerprint)
			if res.AdminPassword != "" {
				fmt.Fprintf(out, "user: %s\npassword: %s\n", res.AdminUser, res.AdminPassword)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node name (default: the host name up to the first dot)")
	cmd.Flags().StringVar(&admin, "admin", "", "create this pve-realm administrator (e.g. admin@pve) if user.cfg is new")
	return cmd
}
