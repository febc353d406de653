package daemon

import "testing"

func TestProcsFor(t *testing.T) {
	for _, tc := range []struct{ avail, want int }{
		{1, 1}, {2, 1}, {3, 1}, {4, 2}, {16, 8}, {128, 64},
	} {
		if got := procsFor(tc.avail); got != tc.want {
			t.Errorf("procsFor(%d) = %d, want %d", tc.avail, got, tc.want)
		}
	}
}
