package qemuapi

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/pvenode/pvenode/pkg/api"
)

// The privilege each config key needs (PVE::API2::Qemu's option groups).
var (
	cpuOptions     = set("cores", "cpu", "runningcpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus")
	memoryOptions  = set("memory", "balloon", "shares", "allow-ksm")
	hwtypeOptions  = set("acpi", "hotplug", "kvm", "machine", "runningmachine", "scsihw", "smbios1", "tablet", "vga", "watchdog", "audio0", "rng0")
	generalOptions = set("agent", "autostart", "bios", "description", "keyboard", "localtime", "migrate_downtime", "migrate_speed", "name", "onboot", "ostype", "protection", "reboot", "startdate", "startup", "tdf", "template")
	diskOptions    = set("boot", "bootdisk", "vmstatestorage")
	cloudinitOpts  = set("cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain", "sshkeys")

	numaKeyRe    = regexp.MustCompile(`^numa\d+$`)
	netKeyRe     = regexp.MustCompile(`^net\d+$`)
	ipconfigRe   = regexp.MustCompile(`^ipconfig\d+$`)
	valueCheckRe = regexp.MustCompile(`^(?:unused|serial|usb|hostpci|virtiofs)\d+$`)
)

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// checkVMPerm is PVE's check_vm_perm: privs on /vms/VMID, or on the pool.
func (d *Deps) checkVMPerm(authid string, vmid int, pool string, anyOf bool, privs ...string) error {
	if authid == api.RootUser {
		return nil
	}
	path := "/vms/" + strconv.Itoa(vmid)
	if d.Privs.CheckPrivs(authid, path, privs, anyOf) {
		return nil
	}
	if pool != "" && d.Privs.CheckPrivs(authid, "/pool/"+pool, privs, anyOf) {
		return nil
	}
	return api.PermissionDenied(path, privs...)
}

// checkConfigPerms is PVE's check_vm_modify_config_perm for the keys set
// or deleted. Drives, unusedN, serial, usb, hostpci and virtiofs keys
// depend on their values and are checked where those are known.
func (d *Deps) checkConfigPerms(authid string, vmid int, pool string, keys []string) error {
	if authid == api.RootUser {
		return nil
	}
	for _, k := range keys {
		var err error
		switch {
		case isDriveKey(k) || k == "cdrom" || valueCheckRe.MatchString(k) || k == "tags":
			continue
		case cpuOptions[k] || numaKeyRe.MatchString(k):
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.Config.CPU")
		case memoryOptions[k]:
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.Config.Memory")
		case hwtypeOptions[k]:
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.Config.HWType")
		case generalOptions[k]:
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.Config.Options")
			if err == nil && k == "startup" && !d.Privs.CheckPrivs(authid, "/", []string{"Sys.Modify"}, false) {
				err = api.PermissionDenied("/", "Sys.Modify")
			}
		case k == "freeze":
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.PowerMgmt")
		case diskOptions[k]:
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.Config.Disk")
		case netKeyRe.MatchString(k) || k == "running-nets-host-mtu":
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.Config.Network")
		case cloudinitOpts[k] || ipconfigRe.MatchString(k):
			err = d.checkVMPerm(authid, vmid, pool, true, "VM.Config.Cloudinit", "VM.Config.Network")
		case k == "vmstate":
			err = d.checkVMPerm(authid, vmid, pool, false, "VM.Config.Disk", "VM.PowerMgmt")
		default:
			err = api.Errorf(http.StatusForbidden, "only root can set '%s' config", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkDrivePerm checks a drive key's own privilege: VM.Config.CDROM for
// a CD-ROM, VM.Config.Disk otherwise.
func (d *Deps) checkDrivePerm(authid string, vmid int, pool, key, value string) error {
	if authid == api.RootUser {
		return nil
	}
	if isCDROMValue(key, value) {
		return d.checkVMPerm(authid, vmid, pool, false, "VM.Config.CDROM")
	}
	return d.checkVMPerm(authid, vmid, pool, false, "VM.Config.Disk")
}

// checkValueKeys refuses the value-dependent keys this build does not
// check in detail (serial, usb, hostpci, virtiofs) to anyone but root,
// which is stricter than PVE (it lets VM.Config.HWType set a serial
// socket or SPICE USB redirection).
func checkValueKeys(authid string, keys []string) error {
	if authid == api.RootUser {
		return nil
	}
	for _, k := range keys {
		if valueCheckRe.MatchString(k) && !isUnusedKey(k) {
			return api.Errorf(http.StatusForbidden, "%s", fmt.Sprintf("only root can set '%s' config", k))
		}
	}
	return nil
}
