package apischema

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Coverage counts the methods of pve that ours declares. missing lists the
// Keys of pve's methods that ours lacks, sorted with SortKeys. Methods of ours
// that pve lacks are not counted (Compare reports them).
func Coverage(ours, pve map[string]*Method) (implemented, total int, missing []string) {
	for k := range pve {
		if _, ok := ours[k]; ok {
			implemented++
		} else {
			missing = append(missing, k)
		}
	}
	SortKeys(missing)
	return implemented, len(pve), missing
}

// WriteCoverageReport writes a plain-text coverage report. Its first line is
// exactly "N of T PVE API methods implemented", T being the number of methods
// in pve; then come the implemented methods, the methods of ours that pve
// lacks (if any), and for each top-level path (/access, /cluster, ...) the
// implemented and total counts, as in "/access 3/60".
func WriteCoverageReport(w io.Writer, ours, pve []*Node) error {
	o, p := Flatten(ours), Flatten(pve)
	implemented, total, _ := Coverage(o, p)

	var done, extra []string
	for k := range o {
		if _, ok := p[k]; ok {
			done = append(done, k)
		} else {
			extra = append(extra, k)
		}
	}
	SortKeys(done)
	SortKeys(extra)

	type tally struct{ done, total int }
	tops := map[string]*tally{}
	for k := range p {
		t := tops[topLevel(k)]
		if t == nil {
			t = &tally{}
			tops[topLevel(k)] = t
		}
		t.total++
		if _, ok := o[k]; ok {
			t.done++
		}
	}
	names := make(map[string]bool, len(tops))
	for name := range tops {
		names[name] = true
	}

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%d of %d PVE API methods implemented\n", implemented, total)
	fmt.Fprintf(bw, "\nImplemented:\n")
	for _, k := range done {
		fmt.Fprintf(bw, "  %s\n", k)
	}
	if len(extra) > 0 {
		fmt.Fprintf(bw, "\nNot in PVE schema:\n")
		for _, k := range extra {
			fmt.Fprintf(bw, "  %s\n", k)
		}
	}
	fmt.Fprintf(bw, "\nBy top-level path:\n")
	for _, name := range sortedSet(names) {
		t := tops[name]
		fmt.Fprintf(bw, "  %s %d/%d\n", name, t.done, t.total)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write coverage report: %w", err)
	}
	return nil
}

// topLevel returns the first path segment of a method Key: "/access" for
// "GET /access/ticket".
func topLevel(key string) string {
	_, path, _ := strings.Cut(key, " ")
	rest := strings.TrimPrefix(path, "/")
	seg, _, _ := strings.Cut(rest, "/")
	return "/" + seg
}
