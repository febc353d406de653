package nodes

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

// Storage replication, target side. PVE replicates a guest's disks with
// `pvesm export | ssh target pvesm import`; here the source node streams a
// point-in-time raw image of each disk to the target's API, which writes it
// as the same volume of its own storage (storage.Dir.ImportRaw).

// replicaSlack is what a replica upload's body may hold besides the image:
// the parameters, the part headers and the boundaries.
const replicaSlack = 64 << 10

// replicaMethod declares POST /nodes/{node}/storage/{storage}/pvenode-replica,
// a pvenode extension with no counterpart in PVE's API.
func (d Deps) replicaMethod() api.Method {
	return api.Method{
		Name: "pvenode_replica_import", Path: "/nodes/{node}/storage/{storage}/pvenode-replica", HTTP: "POST",
		Description: "Import a storage replica of a guest disk (pvenode extension): the raw image in the file part " +
			"'filename' replaces the volume, once complete and synced. Refused for a guest configured on this node.",
		Protected: true,
		ProxyTo:   "node",
		Upload:    true,
		Permissions: api.Permissions{
			// No User or Check: root@pam only, as PVE's replication runs
			// as root over SSH.
			Description: "Only root@pam may import replicas.",
		},
		Params: map[string]*api.Schema{
			"node":     api.Str().Fmt("pve-node").TT("<string>"),
			"storage":  api.Str().Fmt("pve-storage-id").TT("<storage ID>"),
			"volume":   api.Str().MaxLen(255).TT("<string>"),
			"size":     api.Int().Min(1).TT("<integer> (1 - N)"),
			"filename": api.Str().MaxLen(255).Opt().TT("<string>"),
			"delta":    api.Str().Pat(`[0-9a-f]{64}`).Opt().TT("<string>"),
		},
		Returns: api.Null(),
		Handle:  d.replicaImport,
	}
}

// replicaSumsMethod declares GET /nodes/{node}/storage/{storage}/pvenode-replica:
// the checksums the source computes a delta against.
func (d Deps) replicaSumsMethod() api.Method {
	return api.Method{
		Name: "pvenode_replica_sums", Path: "/nodes/{node}/storage/{storage}/pvenode-replica", HTTP: "GET",
		Description: "Checksums of a storage replica's 64 KiB chunks, for an incremental sync (pvenode extension).",
		Protected:   true,
		ProxyTo:     "node",
		Permissions: api.Permissions{Description: "Only root@pam."},
		Params: map[string]*api.Schema{
			"node":    api.Str().Fmt("pve-node").TT("<string>"),
			"storage": api.Str().Fmt("pve-storage-id").TT("<storage ID>"),
			"volume":  api.Str().MaxLen(255).TT("<string>"),
		},
		Returns: api.Obj(map[string]*api.Schema{
			"exists": api.Bool(),
			"size":   api.Int().Opt(),
			"chunk":  api.Int().Opt(),
			"digest": api.Str().Opt(),
			"sums":   api.Str().Opt(),
		}),
		Handle: d.replicaSums,
	}
}

// replicaSums answers the replica's chunk checksums (base64), or exists=0
// when there is no replica to build on.
func (d Deps) replicaSums(ctx context.Context, r *api.Request) (any, error) {
	if r.Identity.AuthID != api.RootUser {
		return nil, api.Errorf(http.StatusForbidden, "Permission check failed (user != root@pam)")
	}
	dir, _, volname, err := d.replicaTarget(r)
	if err != nil {
		return nil, err
	}
	size, sums, ok, err := dir.ReplicaSums(volname)
	if err != nil {
		return nil, err
	}
	if !ok {
		return map[string]any{"exists": 0}, nil
	}
	return map[string]any{"exists": 1, "size": size, "chunk": storage.ChunkSize,
		"digest": storage.SumsDigest(size, sums), "sums": base64.StdEncoding.EncodeToString(sums)}, nil
}

// replicaImport is POST .../pvenode-replica: it checks the target, then
// writes the uploaded raw image as the volume and answers once the volume
// was renamed into place.
func (d Deps) replicaImport(ctx context.Context, r *api.Request) (any, error) {
	if r.Identity.AuthID != api.RootUser {
		// The server refuses already (no permission declaration); this
		// keeps the rule where the disk is written.
		return nil, api.Errorf(http.StatusForbidden, "Permission check failed (user != root@pam)")
	}
	if r.Upload == nil {
		return nil, api.Errorf(http.StatusBadRequest, "upload failed - no file part 'filename' in the request")
	}
	p := r.Params
	size := p.Int("size", 0)
	if size < 1 {
		return nil, api.ParamError(map[string]string{"size": "must be at least 1"})
	}
	base := p.Get("delta")
	if max := r.Upload.MaxSize; max >= 0 && base == "" {
		if max < size {
			return nil, api.Errorf(http.StatusBadRequest,
				"request body of %d bytes cannot hold the %d byte image", max, size)
		}
		if max > size+replicaSlack {
			return nil, api.Errorf(http.StatusRequestEntityTooLarge,
				"request body of %d bytes exceeds the %d byte image by more than %d bytes", max, size, replicaSlack)
		}
	}
	dir, volid, volname, err := d.replicaTarget(r)
	if err != nil {
		return nil, err
	}
	if base != "" {
		err = dir.ImportDelta(ctx, volname, size, base, r.Upload)
	} else {
		err = dir.ImportRaw(ctx, volname, size, r.Upload)
	}
	if err != nil {
		var ae *api.Error
		switch {
		case errors.As(err, &ae):
			return nil, ae // the upload's body failed (cut short, stalled)
		case errors.Is(err, storage.ErrStreamSize):
			return nil, api.Errorf(http.StatusBadRequest, "%v", err)
		case errors.Is(err, storage.ErrDeltaBase):
			return nil, api.Errorf(http.StatusConflict, "%v", err)
		}
		return nil, fmt.Errorf("replica import of '%s' failed: %w", volid, err)
	}
	return nil, nil
}

// replicaTarget resolves and checks the volume a replica import writes: a
// plain image volume of a dir storage enabled on this node that holds
// images, of a guest not configured on this node.
func (d Deps) replicaTarget(r *api.Request) (dir *storage.Dir, volid, volname string, err error) {
	volid, sid, err := realVolumeID(r.Params.Get("storage"), r.Params.Get("volume"))
	if err != nil {
		return nil, "", "", err
	}
	_, volname, err = storage.ParseVolumeID(volid)
	if err != nil {
		return nil, "", "", api.ParamError(map[string]string{"volume": err.Error()})
	}
	v, err := storage.ParseVolname(volname)
	if err != nil {
		return nil, "", "", api.ParamError(map[string]string{"volume": err.Error()})
	}
	if v.VType != storage.VTypeImages || v.VMID == 0 || v.BaseName != "" {
		return nil, "", "", api.ParamError(map[string]string{"volume": fmt.Sprintf("'%s' is not a plain guest disk image", volname)})
	}
	cfg, err := d.storageConfig()
	if err != nil {
		return nil, "", "", err
	}
	s, err := section(cfg, sid)
	if err != nil {
		return nil, "", "", err
	}
	if err := checkEnabled(s, r.NodeName); err != nil {
		return nil, "", "", err
	}
	if s.Type != "dir" {
		return nil, "", "", api.Errorf(http.StatusBadRequest,
			"storage '%s' is of type '%s': replicas are imported into dir storages only", s.ID, s.Type)
	}
	if !s.HasContent(storage.VTypeImages) {
		return nil, "", "", api.Errorf(http.StatusBadRequest, "storage '%s' does not support vm images", s.ID)
	}
	guests, err := vmlist.Read(d.Storage.Config)
	if err != nil {
		return nil, "", "", fmt.Errorf("read the cluster's guest list: %w", err)
	}
	if g, ok := guests[v.VMID]; ok && g.Node == r.NodeName {
		return nil, "", "", api.Errorf(http.StatusBadRequest,
			"guest %d is configured on this node (%s): refusing to overwrite its disk '%s' with a replica",
			v.VMID, r.NodeName, volid)
	}
	if dir, err = d.dirOf(s); err != nil {
		return nil, "", "", err
	}
	return dir, volid, volname, nil
}
