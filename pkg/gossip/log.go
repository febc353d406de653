package gossip

import (
	"context"
	"log/slog"
	"strings"
)

// logWriter bridges memberlist's log.Logger lines ("[LEVEL] memberlist: ...")
// to slog. memberlist's [ERR] lines are mostly about peers (a dead node, a
// refused stream), so they are warnings here.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{
		"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo,
		"[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelWarn,
	} {
		if rest, ok := strings.CutPrefix(s, prefix); ok {
			s, level = rest, l
			break
		}
	}
	w.log.Log(context.Background(), level, s)
	return len(p), nil
}
