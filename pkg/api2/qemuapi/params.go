package qemuapi

import (
	"maps"
	"strings"

	"github.com/pvenode/pvenode/pkg/api"
)

func nodeParam() *api.Schema { return api.Str().Fmt("pve-node").TT("<string>") }

func vmidParam() *api.Schema {
	return api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)")
}

// createParams are the parameters of POST /nodes/{node}/qemu: the config
// keys and those of creation and restore.
func createParams() map[string]*api.Schema {
	p := configProps()
	maps.Copy(p, map[string]*api.Schema{
		"archive":                api.Str().MaxLen(255).Opt().TT("<string>"),
		"bwlimit":                api.Int().Min(0).Def("restore limit from datacenter or storage config").Opt().TT("<integer> (0 - N)"),
		"force":                  api.Bool().Opt().Req("archive").TT("<boolean>"),
		"ha-managed":             api.Bool().Def(0).Opt().TT("<boolean>"),
		"import-working-storage": api.Str().Fmt("pve-storage-id").Opt().TT("<storage ID>"),
		"live-restore":           api.Bool().Opt().TT("<boolean>"),
		"node":                   nodeParam(),
		"pool":                   api.Str().Fmt("pve-poolid").Opt().TT("<string>"),
		"start":                  api.Bool().Def(0).Opt().TT("<boolean>"),
		"storage":                api.Str().Fmt("pve-storage-id").Opt().TT("<storage ID>"),
		"unique":                 api.Bool().Opt().Req("archive").TT("<boolean>"),
		"vmid":                   vmidParam(),
	})
	return p
}

// updateParams are the parameters of PUT (async false) and POST (async
// true) /nodes/{node}/qemu/{vmid}/config.
func updateParams(async bool) map[string]*api.Schema {
	p := configProps()
	maps.Copy(p, map[string]*api.Schema{
		"delete":   api.Str().Fmt("pve-configid-list").Opt().TT("<string>"),
		"digest":   api.Str().MaxLen(40).Opt().TT("<string>"),
		"force":    api.Bool().Opt().Req("delete").TT("<boolean>"),
		"node":     nodeParam(),
		"revert":   api.Str().Fmt("pve-configid-list").Opt().TT("<string>"),
		"skiplock": api.Bool().Opt().TT("<boolean>"),
		"vmid":     vmidParam(),
	})
	if async {
		p["background_delay"] = api.Int().Range(1, 30).Opt().TT("<integer> (1 - 30)")
		p["import-working-storage"] = api.Str().Fmt("pve-storage-id").Opt().TT("<storage ID>")
	}
	return p
}

// configReturnProps is the schema of GET .../config: the config keys
// (drive formats without the create-only import-from) and the keys only a
// stored config has.
func configReturnProps() map[string]*api.Schema {
	p := configProps()
	for k, s := range p {
		s.TypeText = ""
		if f, ok := s.Format.(api.PropertyFormat); ok && f["import-from"] != nil {
			delete(f, "import-from")
		}
		if k == "cdrom" {
			s.TypeText = "<volume>"
		}
	}
	maps.Copy(p, configOnlyReturnProps())
	return p
}

// propSchema returns the declaration of a config key ("scsi3" finds
// "scsi[n]"), or nil for a key PVE does not know.
func propSchema(props map[string]*api.Schema, key string) *api.Schema {
	if s, ok := props[key]; ok && s.Count == 0 {
		return s
	}
	base := strings.TrimRight(key, "0123456789")
	if base == key || base == "" {
		return nil
	}
	s, ok := props[base+"[n]"]
	if !ok {
		return nil
	}
	return s
}

// vmStatusProps are the figures of a VM in the list and in its status.
func vmStatusProps() map[string]*api.Schema {
	return map[string]*api.Schema{
		"cpu":                api.Num().Opt(),
		"cpus":               api.Num().Opt(),
		"diskread":           api.Int().Opt(),
		"diskwrite":          api.Int().Opt(),
		"lock":               api.Str().Opt(),
		"maxdisk":            api.Int().Opt(),
		"maxmem":             api.Int().Opt(),
		"mem":                api.Int().Opt(),
		"memhost":            api.Int().Opt(),
		"name":               api.Str().Opt(),
		"netin":              api.Int().Opt(),
		"netout":             api.Int().Opt(),
		"pid":                api.Int().Opt(),
		"pressurecpufull":    api.Num().Opt(),
		"pressurecpusome":    api.Num().Opt(),
		"pressureiofull":     api.Num().Opt(),
		"pressureiosome":     api.Num().Opt(),
		"pressurememoryfull": api.Num().Opt(),
		"pressurememorysome": api.Num().Opt(),
		"qmpstatus":          api.Str().Opt(),
		"running-machine":    api.Str().Opt(),
		"running-qemu":       api.Str().Opt(),
		"serial":             api.Bool().Opt(),
		"status":             api.Str().Enums("stopped", "running"),
		"tags":               api.Str().Opt(),
		"template":           api.Bool().Def(0).Opt(),
		"uptime":             api.Int().Opt(),
		"vmid":               api.Int().Fmt("pve-vmid").Range(100, 999999999),
	}
}
