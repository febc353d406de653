package calendar

import (
	"testing"
	"time"
)

var benchSpecs = []string{"*/15", "mon..fri 21:00", "sat *-1..7 15:00", "2,22:30", "monthly UTC"}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		for _, s := range benchSpecs {
			if _, err := Parse(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkNext(b *testing.B) {
	loc := mustLoad(b, "Europe/Vienna")
	from := time.Date(2026, 3, 11, 14, 7, 30, 0, loc)
	for _, s := range benchSpecs {
		ev := MustParse(s)
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				if ev.Next(from).IsZero() {
					b.Fatal("no next time")
				}
			}
		})
	}
}
