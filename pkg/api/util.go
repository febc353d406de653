package api

import (
	"errors"
	"net"
	"strconv"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func asOpError(err error, op **net.OpError) bool { return errors.As(err, op) }

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
