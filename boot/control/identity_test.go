package control

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// overlayDaemon is a fakeDaemon that also takes an identity.
type overlayDaemon struct {
	fakeDaemon
	got []string
}

func (o *overlayDaemon) SetIdentity(path string) error {
	if strings.HasSuffix(path, "bad") {
		return errors.New("invalid identity seed file: seed is 3 bytes, want 32")
	}
	o.got = append(o.got, path)
	return nil
}

func TestIdentityCommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       Handler
		req     Request
		wantErr string
	}{
		{"taken", &overlayDaemon{}, Request{Cmd: "identity", Path: "/var/cache/modules/identityd/seed.txt"}, ""},
		{"relative", &overlayDaemon{}, Request{Cmd: "identity", Path: "seed.txt"}, `"seed.txt" is not an absolute path`},
		{"refused", &overlayDaemon{}, Request{Cmd: "identity", Path: "/x/bad"}, "identity: invalid identity seed file"},
		{"no overlays", &fakeDaemon{}, Request{Cmd: "identity", Path: "/x/seed.txt"}, "runs no overlays"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ctl.sock")
			srv := listen(t, path, tc.h, self)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() { srv.Serve(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			_, err := Do(ctx, path, tc.req)
			if tc.wantErr == "" {
				if o := tc.h.(*overlayDaemon); err != nil || len(o.got) != 1 || o.got[0] != tc.req.Path {
					t.Fatalf("err %v, daemon got %v", err, o.got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}
