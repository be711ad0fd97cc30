package manifest

import (
	"errors"
	"testing"
)

// checkFuzzResult fails unless Parse's result is either a manifest or a List
// of positioned problems.
func checkFuzzResult(t *testing.T, m *Manifest, err error) {
	t.Helper()
	if err == nil {
		if m == nil {
			t.Fatal("nil manifest and nil error")
		}
		if len(m.Processes) == 0 && len(m.Static) == 0 {
			t.Fatalf("manifest with nothing to run or serve: %+v", m)
		}
		return
	}
	if m != nil {
		t.Fatalf("manifest %+v returned with error %v", m, err)
	}
	var list List
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %T %q is not a non-empty List", err, err)
	}
	for _, e := range list {
		if e == nil || e.Line < 1 || e.Column < 1 || e.Msg == "" {
			t.Fatalf("badly positioned problem %+v in %q", e, err)
		}
	}
	var first *Error
	if !errors.As(err, &first) || first != list[0] {
		t.Fatalf("errors.As(*Error) did not give the first problem of %q", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		designYAML,
		"",
		"processes: {web: x}\nscale: {web: {min: 1, max: 4}}\n",
		"x-a: &a {web: x}\nprocesses: {<<: *a}\n",
		"processes: &x {web: *x}\n",
		"processes:\n  web: |\n    run\n",
		"processes: {web: {command: ./s, protocol: h2c}, worker: {command: w}}\n",
		"processes: {web: {protocol: h2}, worker: {command: w, protocol: http}}\n",
		"static: {/: public}\ncache: [{path: /*, ttl: 60}]\n",
		"cron: [{schedule: '@every 1m', path: /x}]\nqueues: {q: {rate: 5/h}}\n",
		"env: {A: 1, B: !!str 2, C: ~}\nlimits: {memory: 1.5GiB, cpu: 2}\n",
		"processes: {web: x}\nlimits: {requests: 100/s, per_ip: 10/s}\n",
		"processes: {web: x}\nlimits: {requests: 0/s, per_ip: [1], reqests: 5}\n",
		"- a\n- b\n",
		"a: [1, 2\n",
		"---\na: 1\n---\nb: 2\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("pier.yaml", data)
		checkFuzzResult(t, m, err)
	})
}

func FuzzParseProcfile(f *testing.F) {
	for _, seed := range []string{
		"web: gunicorn app:app\nworker: celery -A app worker\n",
		"",
		"# comment\n\nweb: x\r\n",
		"web\n: x\nWeb: y\nweb:\n",
		"web: a\nweb: b\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseProcfile("Procfile", data)
		checkFuzzResult(t, m, err)
	})
}
