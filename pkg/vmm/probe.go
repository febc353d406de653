package vmm

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Binary describes a QEMU executable.
type Binary struct {
	// Version is the QEMU version ("7.2.22").
	Version string
	// Upstream is true unless the binary is PVE's pve-qemu-kvm build.
	Upstream bool
}

// versionRe finds the version in `qemu-system-x86_64 --version`.
var versionRe = regexp.MustCompile(`version (\d+\.\d+\.\d+)`)

// ProbeBinary runs `bin --version` (bounded by ctx and 10 s) and reports
// its version and whether it is upstream QEMU.
func ProbeBinary(ctx context.Context, bin string) (Binary, error) {
	if bin == "" {
		bin = defaultBinary
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return Binary{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	m := versionRe.FindSubmatch(out)
	if m == nil {
		return Binary{}, fmt.Errorf("%s --version: no version in %q", bin, firstLine(string(out)))
	}
	return Binary{Version: string(m[1]), Upstream: !strings.Contains(string(out), "pve-qemu-kvm")}, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// defaultBinary is the QEMU executable used when none is configured.
const defaultBinary = "qemu-system-x86_64"
