package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// systemPath is the PATH every build command gets.
const systemPath = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// passedEnv are the only variables build commands inherit from the engine.
var passedEnv = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

// session is one Build call.
type session struct {
	b   *Builder
	req Request
	log *lineWriter
}

// logf writes one line of pier's own to the build log.
func (s *session) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "-----> "+format+"\n", args...)
}

// run runs one build step: argv in dir, as req.Cred, with the build
// environment plus env, its output streamed to the log. Cancelling ctx kills
// the step's whole process group.
func (s *session) run(ctx context.Context, step, dir string, env []string, argv ...string) error {
	s.logf("%s", strings.Join(argv, " "))
	cmd := s.command(ctx, dir, env, argv)
	cmd.Stdout = s.log // the same writer for both: exec serializes the writes
	cmd.Stderr = s.log
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return fmt.Errorf("build %s: %s: %w", s.req.Kind, step, err)
	}
	return nil
}

// output runs argv like run does but returns its stdout instead of logging it.
func (s *session) output(ctx context.Context, step string, argv ...string) (string, error) {
	cmd := s.command(ctx, s.req.Dir, nil, argv)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, lastLine(msg))
		}
		return "", fmt.Errorf("build %s: %s: %w", s.req.Kind, step, err)
	}
	return strings.TrimSpace(out.String()), nil
}

func (s *session) command(ctx context.Context, dir string, env, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = s.env(env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred()}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild that keeps the output pipe open must not hang the build.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// env is the environment of a build command: a fixed base, the proxy
// variables of the engine, the step's own, then Builder.Env.
func (s *session) env(extra []string) []string {
	env := []string{
		"PATH=" + systemPath,
		"HOME=" + s.req.CacheDir,
		"LANG=C.UTF-8",
	}
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, extra...)
	return append(env, s.b.Env...)
}

// cred is the credential to run commands with: req.Cred, unless the engine
// already is that user (only root may call setgroups).
func (s *session) cred() *syscall.Credential {
	c := s.req.Cred
	if c == nil || (os.Geteuid() != 0 && int(c.Uid) == os.Geteuid()) {
		return nil
	}
	return c
}

// chown gives a path pier created to req.Cred, so the build commands that
// run as that user can write to it.
func (s *session) chown(p string) error {
	if s.req.Cred == nil || os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(p, int(s.req.Cred.Uid), int(s.req.Cred.Gid))
}

// mkdirAll is os.MkdirAll that chowns each directory it creates.
func (s *session) mkdirAll(p string) error {
	var missing []string
	for d := p; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := s.chown(missing[i]); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes a small file pier owns the content of (markers, copies).
func (s *session) writeFile(name string, data []byte) error {
	if err := os.WriteFile(name, data, 0o644); err != nil {
		return err
	}
	return s.chown(name)
}

// symlink makes link point to target, replacing whatever non-directory is there.
func (s *session) symlink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil {
		if fi.IsDir() {
			if err := os.RemoveAll(link); err != nil {
				return err
			}
		} else if err := os.Remove(link); err != nil {
			return err
		}
	}
	if err := os.Symlink(target, link); err != nil {
		return err
	}
	return s.chown(link)
}

// lock takes an exclusive flock on name, waiting for ctx. Concurrent builds
// of the same key (the same app deployed twice at once) take turns; the
// second one then finds the cache filled.
func (s *session) lock(ctx context.Context, name string) (unlock func(), err error) {
	if err := s.mkdirAll(filepath.Dir(name)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	s.chown(name)
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if !waited {
			s.logf("waiting for another build of the same dependencies")
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// cacheKey hashes its parts, each ended by a NUL so ("ab","c") != ("a","bc").
func cacheKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// readOptional returns a file's content, or "" if it does not exist.
func readOptional(name string) (string, bool, error) {
	b, err := os.ReadFile(name)
	if isNotExist(err) {
		return "", false, nil
	}
	return string(b), err == nil, err
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// lineWriter passes whole lines to w, one Write per line, as they complete.
// It is safe for concurrent use. Errors from w are ignored: a broken log must
// not fail a build.
type lineWriter struct {
	mu  sync.Mutex // guards w, buf
	w   io.Writer
	buf []byte
}

const maxLine = 64 << 10

func newLineWriter(w io.Writer) *lineWriter {
	if w == nil {
		w = io.Discard
	}
	return &lineWriter{w: w}
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.w.Write(l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) >= maxLine { // a "line" this long is cut, not buffered forever
		l.w.Write(append(l.buf, '\n'))
		l.buf = nil
	}
	l.buf = append([]byte(nil), l.buf...)
	return len(p), nil
}

// Flush writes a last, unterminated line.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.w.Write(append(l.buf, '\n'))
		l.buf = nil
	}
}
