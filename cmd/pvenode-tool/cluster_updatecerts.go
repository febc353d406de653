package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/pvenode/pvenode/pkg/corosync"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/setup"
)

// reloadCommand is what makes the daemons use renewed node certificates:
// pveproxy loads its certificate and its client certificate for other
// nodes on reload, pvestatd restarts its gossip with the node certificate.
const reloadCommand = "systemctl reload pveproxy pvestatd"

func clusterUpdateCertsCommand(f *clusterFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "updatecerts",
		Short: "renew the node's certificates when they are due (pvecm updatecerts)",
		Long: "Issues nodes/<node>/pve-ssl.pem and pve-ssl-ecdsa.pem again from the cluster CA when one " +
			"is missing, unparsable, not issued by the CA, not matching its key, expired, expiring within " +
			"14 days or running more than 2 years (PVE's daily check), or with --force. The CA and the " +
			"node keys are kept. Afterwards run '" + reloadCommand + "' on the node.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			node, err := nodename.Resolve(f.node)
			if err != nil {
				return err
			}
			paths, err := daemon.PathsOf(cmd)
			if err != nil {
				return err
			}
			if _, err := os.Stat(paths.ConfigRoot); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("config root %s does not exist: the node's first start makes it and the certificates", paths.ConfigRoot)
			}
			root, err := pvefs.Open(paths.ConfigRoot)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if force {
				fmt.Fprintln(out, "generate new node certificate")
			}
			opts := setup.RenewOptions{Force: force}
			opts.NodeName = node
			opts.IPs = otherNodeAddrs(cmd.Context(), root, node)
			res, err := setup.RenewNodeCertificates(cmd.Context(), root, opts)
			if res != nil {
				writeRenewal(out, root, res)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "renew the certificates even when they are valid")
	return cmd
}

// otherNodeAddrs returns the addresses for the certificate of node when it
// is not this host: its link addresses in corosync.conf (PVE takes the
// cluster's address of the node) and those its name resolves to, never
// this host's own. For this host it returns nil: setup's default, as at the
// first start.
func otherNodeAddrs(ctx context.Context, root *pvefs.Root, node string) []netip.Addr {
	if self, err := nodename.Resolve(""); err == nil && self == node {
		return nil
	}
	ips := []netip.Addr{} // not nil: only these (and the loopback addresses)
	add := func(a netip.Addr) {
		if a = a.Unmap(); a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() && !slices.Contains(ips, a) {
			ips = append(ips, a)
		}
	}
	if c, _ := corosync.Load(root); c != nil {
		if n, ok := c.Node(node); ok {
			for l := 0; l <= corosync.MaxLink; l++ {
				if a, err := netip.ParseAddr(n.Links[l]); err == nil {
					add(a)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", node); err == nil {
		for _, a := range addrs {
			add(a)
		}
	}
	return ips
}

// writeRenewal prints one line per certificate and, after a renewal, what
// makes the daemons use it.
func writeRenewal(w io.Writer, root *pvefs.Root, res *setup.RenewResult) {
	for _, c := range res.Certs {
		path := filepath.Join(root.Dir(), c.CertFile)
		until := c.NotAfter.UTC().Format("2006-01-02 15:04:05 MST")
		if !c.Renewed {
			fmt.Fprintf(w, "%s: valid until %s, kept\n", path, until)
			continue
		}
		how := "renewed"
		if c.NewKey {
			how = "renewed with a new key"
		}
		fmt.Fprintf(w, "%s: %s, %s: valid until %s, fingerprint %s\n", path, c.Reason, how, until, c.Fingerprint)
	}
	if res.Renewed() {
		fmt.Fprintf(w, "Run '%s' on %s so that its daemons use the new certificate.\n", reloadCommand, res.NodeName)
	}
}
