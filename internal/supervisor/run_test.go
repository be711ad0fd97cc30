package supervisor

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunExitCodeAndOutput(t *testing.T) {
	t.Parallel()
	s, rec := newTestSupervisor(t)
	var buf bytes.Buffer
	code, err := s.Run(context.Background(), Spec{
		App: "blog", Process: "run", Instance: "run.1",
		Command: script(t, `echo "one $GREETING"; echo two >&2; exit 7`),
		Env:     baseEnv("GREETING=hi"),
	}, &buf)
	if err != nil || code != 7 {
		t.Fatalf("Run = %d, %v; want 7, nil", code, err)
	}
	got := buf.String()
	if !strings.Contains(got, "one hi\n") || !strings.Contains(got, "two\n") {
		t.Errorf("writer got %q", got)
	}
	waitFor(t, 5*time.Second, "lines on Output", func() bool {
		return rec.hasLine("stdout", "one hi") && rec.hasLine("stderr", "two")
	})

	if code, err := s.Run(context.Background(), Spec{Command: "true"}, nil); err != nil || code != 0 {
		t.Errorf("Run true = %d, %v", code, err)
	}
	if code, err := s.Run(context.Background(), Spec{Command: script(t, "kill -9 $$")}, nil); err != nil || code != 128+9 {
		t.Errorf("Run killed = %d, %v; want 137", code, err)
	}
	if code, err := s.Run(context.Background(), Spec{Command: "true", Dir: "/nonexistent"}, nil); err == nil || code != -1 {
		t.Errorf("Run in missing dir = %d, %v; want -1 and an error", code, err)
	}
}

type lineRecorder struct {
	mu    sync.Mutex
	lines []Line
}

func (l *lineRecorder) Write(p []byte) (int, error) {
	return 0, errors.New("Write called on a LineWriter")
}
func (l *lineRecorder) WriteLine(line Line) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	return nil
}

func TestRunLineWriter(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t)
	var w lineRecorder
	code, err := s.Run(context.Background(), Spec{Command: script(t, "echo out; echo err >&2"), Env: baseEnv()}, &w)
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	streams := map[string]string{}
	for _, l := range w.lines {
		streams[l.Text] = l.Stream
	}
	if streams["out"] != "stdout" || streams["err"] != "stderr" {
		t.Errorf("lines %+v", w.lines)
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t)
	ctx, cancel := context.WithCancel(context.Background())
	var w lineRecorder
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		code, err = s.Run(ctx, Spec{Command: script(t, `trap 'echo bye; exit 5' TERM; echo started; while :; do sleep 0.05; done`), Env: baseEnv()}, &w)
		close(done)
	}()
	waitFor(t, 10*time.Second, "started", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.lines) > 0
	})
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) || code != 5 {
		t.Errorf("Run = %d, %v; want 5, context.Canceled", code, err)
	}
}

// A consumer that never returns must not stall the child: lines are
// dropped and the pipe keeps draining.
func TestSlowOutputDoesNotStall(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	s := New(Options{Output: func(Line) { <-block }})
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err := s.Run(ctx, Spec{Command: script(t, `i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done`), Env: baseEnv()}, nil)
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
}

func TestShellLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"python app.py", "exec python app.py"},
		{"gunicorn -b 127.0.0.1:$PORT app:app > log 2>&1", "exec gunicorn -b 127.0.0.1:$PORT app:app > log 2>&1"},
		{"cd web && ./server", "cd web && ./server"},
		{"migrate; serve", "migrate; serve"},
		{"a | b", "a | b"},
		{"echo $(date)", "echo $(date)"},
		{"a\nb", "a\nb"},
	} {
		if got := shellLine(tc.in); got != tc.want {
			t.Errorf("shellLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRunCompoundCommand(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t)
	var buf bytes.Buffer
	code, err := s.Run(context.Background(), Spec{Command: "cd / && pwd; echo two | tr a-z A-Z; exit 3", Env: baseEnv()}, &buf)
	if err != nil || code != 3 || buf.String() != "/\nTWO\n" {
		t.Errorf("Run = %d, %v, output %q", code, err, buf.String())
	}
}
