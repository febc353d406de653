package gossip

import (
	"bytes"
	"reflect"
	"testing"
)

func TestWireRoundTrip(t *testing.T) {
	rs := []stateRecord{
		{name: "pve1", version: 1, payload: []byte{encRaw, 'a'}},
		{name: "pve2", version: 1 << 62, payload: append([]byte{encZstd}, bytes.Repeat([]byte{7}, 3000)...)},
	}
	kind, body, err := splitKind(encodeStates(rs))
	if err != nil || kind != kindStates {
		t.Fatalf("splitKind(states) = %d, %v", kind, err)
	}
	got, err := decodeStates(body, 10, 4096)
	if err != nil || !reflect.DeepEqual(got, rs) {
		t.Errorf("decodeStates = %+v, %v; want %+v", got, err, rs)
	}

	kind, body, _ = splitKind(encodeRef(kindAnnounce, "pve1", 42, "pve3"))
	name, v, other, err := decodeRef(body)
	if kind != kindAnnounce || name != "pve1" || v != 42 || other != "pve3" || err != nil {
		t.Errorf("announce decodes to %d %q %d %q %v", kind, name, v, other, err)
	}

	es := []digestEntry{{"a", 1}, {"b", 2}}
	_, body, _ = splitKind(encodeDigest("me", es))
	sender, gotEs, err := decodeDigest(body, 10)
	if sender != "me" || !reflect.DeepEqual(gotEs, es) || err != nil {
		t.Errorf("digest decodes to %q %v %v", sender, gotEs, err)
	}
}

func TestWireRejects(t *testing.T) {
	good := encodeStates([]stateRecord{{name: "pve1", version: 1, payload: []byte{encRaw, 'a'}}})
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"other version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"forged count", []byte{wireVersion, kindStates, 0xff, 0xff, 0x03}},
		{"empty name", []byte{wireVersion, kindStates, 1, 0, 1, 2, encRaw, 'a'}},
		{"empty payload", []byte{wireVersion, kindStates, 1, 1, 'x', 1, 0}},
		{"payload over limit", encodeStates([]stateRecord{{name: "x", version: 1, payload: make([]byte, 5000)}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, body, err := splitKind(tc.msg)
			if err == nil {
				if kind != kindStates {
					t.Fatalf("kind %d", kind)
				}
				_, err = decodeStates(body, 10, 4096)
			}
			if err == nil {
				t.Errorf("message %x accepted", tc.msg)
			}
		})
	}
}

// FuzzHandle feeds arbitrary messages to a node's message handler: nothing
// may panic or be taken.
func FuzzHandle(f *testing.F) {
	f.Add(encodeStates([]stateRecord{{name: "pve1", version: 1, payload: []byte{encZstd, 0x28, 0xb5, 0x2f, 0xfd}}}))
	f.Add(encodeRef(kindAnnounce, "pve1", 1, "pve2"))
	f.Add(encodeRef(kindRequest, "pve1", 1, "pve2"))
	f.Add(encodeDigest("pve2", []digestEntry{{"pve1", 3}}))
	f.Add(encodeLeave("pve2"))
	c := newCluster(f)
	c.grow(1)
	n := c.nodes[0]
	f.Fuzz(func(t *testing.T, msg []byte) {
		n.handle(msg)
		n.mergeDigest(msg)
	})
}
