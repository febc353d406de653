package vma

import "math/bits"

// clusterSet records which clusters of one device have been seen. It is
// sparse (one 64-bit word per 64 clusters actually touched), so its memory
// grows with the data written or read, never with a device size taken from
// an untrusted header.
type clusterSet struct {
	words map[uint32]uint64
	count uint64
}

func newClusterSet() *clusterSet {
	return &clusterSet{words: make(map[uint32]uint64)}
}

// add marks cluster as seen and reports false if it already was.
func (s *clusterSet) add(cluster uint32) bool {
	key, bit := cluster>>6, uint64(1)<<(cluster&63)
	w := s.words[key]
	if w&bit != 0 {
		return false
	}
	s.words[key] = w | bit
	s.count++
	return true
}

// firstMissing returns the lowest cluster below total that was not seen,
// and false if all of [0, total) were seen. The search stops at the first
// word that is not full, so it costs at most count/64+1 lookups.
func (s *clusterSet) firstMissing(total uint64) (uint64, bool) {
	for key := uint64(0); key*64 < total; key++ {
		w := s.words[uint32(key)]
		if w != ^uint64(0) {
			c := key*64 + uint64(bits.TrailingZeros64(^w))
			if c < total {
				return c, true
			}
			return 0, false
		}
	}
	return 0, false
}
