// Package vzdumpapi declares and answers /nodes/{node}/vzdump: the backup
// job (POST, a "vzdump" worker task running pkg/vzdump), the configured
// defaults (GET defaults, from /etc/vzdump.conf and the storage) and the
// VM config inside a backup archive (GET extractconfig), as pve-manager's
// PVE::API2::VZDump does.
//
// Not implemented: container guests (refused when listed, skipped with
// "all"), pool, stop (ending running jobs), stdout (CLI only, as in PVE),
// lzo compression. Accepted but only logged as not implemented: mailto,
// mailnotification, notification-mode, script, pigz, performance,
// fleecing, exclude-path, stdexcludes, pbs-change-detection-mode, tmpdir,
// ionice, quiet and job-id.
package vzdumpapi
