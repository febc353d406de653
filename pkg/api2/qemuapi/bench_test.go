package qemuapi_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// vmConf is a typical PVE VM config, as the web interface writes it.
const vmConf = `boot: order=scsi0;ide2;net0
cores: 2
cpu: x86-64-v2-AES
ide2: none,media=cdrom
memory: 2048
meta: creation-qemu=9.0.2,ctime=1722500000
name: vm%d
net0: virtio=BC:24:11:%02X:%02X:%02X,bridge=vmbr0,firewall=1
numa: 0
ostype: l26
scsi0: store:%d/vm-%d-disk-0.qcow2,iothread=1,size=32G
scsihw: virtio-scsi-single
smbios1: uuid=6f1b3a52-63c2-4b61-8d8e-6b4c2b0f%04x
sockets: 1
vmgenid: 4c5e9d14-59a5-4d6c-9b1f-2f5a7c1e%04x
`

// BenchmarkListVMs500 measures GET /nodes/{node}/qemu on a node with 500
// stopped VMs (configs only; a running VM adds its /proc and QMP figures).
func BenchmarkListVMs500(b *testing.B) {
	e := newEnv(b)
	dir := filepath.Join(e.Dir, "nodes", node, "qemu-server")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 500 {
		vmid := 1000 + i
		conf := fmt.Sprintf(vmConf, vmid, i>>16&0xff, i>>8&0xff, i&0xff, vmid, vmid, i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(vmid)+".conf"), []byte(conf), 0o640); err != nil {
			b.Fatal(err)
		}
	}
	var list []status
	if err := json.Unmarshal(e.must("GET", "/nodes/n1/qemu", nil), &list); err != nil || len(list) != 500 {
		b.Fatalf("list: %d entries, %v", len(list), err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e.must("GET", "/nodes/n1/qemu", nil)
	}
}

// BenchmarkStartToRunning measures the time from the start call to QMP
// status "running" (status/current), then stops the VM (not timed).
func BenchmarkStartToRunning(b *testing.B) {
	e := newEnv(b)
	e.createVM("100", nil)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		var upid string
		json.Unmarshal(e.must("POST", "/nodes/n1/qemu/100/status/start", nil), &upid)
		for e.status("100").QMPStatus != "running" {
			if time.Since(began) > time.Minute {
				b.Fatal("not running after a minute")
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(began)
		b.StopTimer()
		if st := e.wait(upid); st != "OK" {
			b.Fatalf("start: %s", st)
		}
		if st := e.task("POST", "/nodes/n1/qemu/100/status/stop", nil); st != "OK" {
			b.Fatalf("stop: %s", st)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/start")
}
