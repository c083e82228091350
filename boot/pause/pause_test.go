package pause

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"elapsed", live, time.Millisecond, nil},
		{"zero", live, 0, nil},
		{"past", live, -time.Hour, nil},
		// An hour-long wait must end with the context, not the timer.
		{"ended", ended, time.Hour, context.Canceled},
		{"ended zero", ended, 0, context.Canceled},
	} {
		if err := For(tc.ctx, tc.d); !errors.Is(err, tc.want) {
			t.Errorf("%s: For(%v) = %v, want %v", tc.name, tc.d, err, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n          int
		base, ceil time.Duration
		want       time.Duration
	}{
		{-1, time.Second, 30 * time.Second, time.Second},
		{0, time.Second, 30 * time.Second, time.Second},
		{1, time.Second, 30 * time.Second, time.Second},
		{2, time.Second, 30 * time.Second, 2 * time.Second},
		{5, time.Second, 30 * time.Second, 16 * time.Second},
		{6, time.Second, 30 * time.Second, 30 * time.Second},
		{1 << 20, time.Second, 30 * time.Second, 30 * time.Second},
		{4, time.Minute, 11 * time.Minute, 8 * time.Minute},
		{5, time.Minute, 11 * time.Minute, 11 * time.Minute},
		// A base past the ceiling is cut to it.
		{1, time.Hour, time.Minute, time.Minute},
		// Doubling never overflows into a short wait.
		{100, time.Duration(1) << 61, time.Duration(1<<63 - 1), time.Duration(1<<63 - 1)},
	} {
		if got := Backoff(tc.n, tc.base, tc.ceil); got != tc.want {
			t.Errorf("Backoff(%d, %v, %v) = %v, want %v", tc.n, tc.base, tc.ceil, got, tc.want)
		}
	}
}
