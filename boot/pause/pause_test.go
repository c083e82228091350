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
