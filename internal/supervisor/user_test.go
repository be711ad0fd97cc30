package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestEnsureUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if u, err := EnsureUser(context.Background(), "blog"); u != nil || err != nil {
			t.Errorf("as non-root: %+v, %v; want nil, nil", u, err)
		}
		t.Skip("creating users needs root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	b := make([]byte, 4)
	rand.Read(b)
	app := "t" + hex.EncodeToString(b)
	u, err := EnsureUser(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", u.Name).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v: %s", u.Name, err, out)
		}
	})
	if u.Name != "pier-"+app || u.Uid == 0 || u.Gid == 0 {
		t.Fatalf("user %+v", u)
	}
	again, err := EnsureUser(context.Background(), app)
	if err != nil || *again != *u {
		t.Errorf("second EnsureUser = %+v, %v; want %+v", again, err, u)
	}
	if out, err := exec.Command("getent", "passwd", u.Name).Output(); err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), ":/usr/sbin/nologin") {
		t.Errorf("passwd entry %q (%v)", out, err)
	}

	s, _ := newTestSupervisor(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf strings.Builder
	code, err := s.Run(ctx, Spec{Command: "id -u; id -g; id -G", Dir: "/", Env: baseEnv(), User: u}, &buf)
	if err != nil || code != 0 {
		t.Fatalf("Run as %s = %d, %v: %s", u.Name, code, err, buf.String())
	}
	want := fmt.Sprintf("%d\n%d\n%d\n", u.Uid, u.Gid, u.Gid)
	if buf.String() != want {
		t.Errorf("id printed %q, want %q (uid, gid, no supplementary groups)", buf.String(), want)
	}

	for _, bad := range []string{"Blog", "a.b", strings.Repeat("x", 40)} {
		if _, err := EnsureUser(context.Background(), bad); err == nil {
			t.Errorf("EnsureUser(%q): no error", bad)
		}
	}
}
