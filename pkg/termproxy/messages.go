package termproxy

import (
	"bufio"
	"io"
	"strconv"
)

// Message types of termproxy's protocol.
const (
	msgData   = '0'
	msgResize = '1'
	// '2' (ping) and anything else is skipped a byte at a time.
)

// decodeInput reads the client's messages from rd until it ends and acts
// on them: data goes to write (through one bounded buffer), a resize to
// resize. Malformed numbers and unknown bytes are skipped, as termproxy
// does. It returns the error that ended rd (io.EOF at its end) or the
// first error of write.
func decodeInput(rd *bufio.Reader, write func([]byte) error, resize func(cols, rows int)) error {
	buf := make([]byte, bufferSize)
	for {
		typ, err := rd.ReadByte()
		if err != nil {
			return err
		}
		switch typ {
		case msgData:
			if _, err := rd.ReadByte(); err != nil { // the ':'
				return err
			}
			n, ok, err := readNumber(rd)
			if err != nil {
				return err
			}
			for ok && n > 0 {
				m, err := io.ReadFull(rd, buf[:min(n, len(buf))])
				if m > 0 {
					if werr := write(buf[:m]); werr != nil {
						return werr
					}
				}
				if err != nil {
					return err
				}
				n -= m
			}
		case msgResize:
			if _, err := rd.ReadByte(); err != nil {
				return err
			}
			cols, ok1, err := readNumber(rd)
			if err != nil {
				return err
			}
			rows, ok2, err := readNumber(rd)
			if err != nil {
				return err
			}
			if ok1 && ok2 {
				resize(cols, rows)
			}
		}
	}
}

// readNumber reads a decimal number ended by ':'; ok is false (and the
// bytes read are dropped) for one that is not a number or longer than
// numberMax digits.
func readNumber(rd *bufio.Reader) (n int, ok bool, err error) {
	var digits [numberMax]byte
	for i := 0; ; i++ {
		c, err := rd.ReadByte()
		if err != nil {
			return 0, false, err
		}
		if c == ':' {
			v, perr := strconv.ParseUint(string(digits[:i]), 10, 31)
			return int(v), perr == nil, nil
		}
		if i == numberMax {
			return 0, false, nil
		}
		digits[i] = c
	}
}
