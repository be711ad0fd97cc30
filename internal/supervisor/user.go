package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// EnsureUser returns the system user "pier-<app>" that the app's processes
// run as, creating it if missing (useradd --system --no-create-home
// --shell /usr/sbin/nologin --user-group). It needs root: when the engine
// does not run as root it returns (nil, nil) and processes run as the
// engine's user.
func EnsureUser(ctx context.Context, app string) (*User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := "pier-" + app
	if err := validUserName(name); err != nil {
		return nil, err
	}
	if u, err := lookupUser(name); err == nil {
		return u, nil
	}
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--no-create-home",
		"--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput()
	if err != nil {
		// Another caller may have created it meanwhile (useradd exits 9).
		if u, lerr := lookupUser(name); lerr == nil {
			return u, nil
		}
		return nil, fmt.Errorf("useradd %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return lookupUser(name)
}

func lookupUser(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	return &User{Name: name, Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// validUserName accepts what useradd accepts by default on Debian:
// [a-z_][a-z0-9_-]*, at most 32 characters.
func validUserName(name string) error {
	if len(name) > 32 {
		return fmt.Errorf("user name %q: longer than 32 characters", name)
	}
	for k, c := range name {
		ok := c >= 'a' && c <= 'z' || c == '_' || k > 0 && (c >= '0' && c <= '9' || c == '-')
		if !ok {
			return fmt.Errorf("user name %q: only lowercase letters, digits, '_' and '-'", name)
		}
	}
	return nil
}
