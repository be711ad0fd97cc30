package cli

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true},
		{"64K", 64 << 10, true},
		{"64k", 64 << 10, true},
		{"64KB", 64 << 10, true},
		{"1KiB", 1 << 10, true},
		{"1kib", 1 << 10, true},
		{"256MiB", 256 << 20, true},
		{" 2G ", 2 << 30, true},
		{"1GiB", 1 << 30, true},
		{"10B", 10, true},
		{"0", -1, true},
		{"", 0, false},
		{"KiB", 0, false},
		{"1.5M", 0, false},
		{"-1K", 0, false},
		{"1Ti", 0, false},
		{"1iB", 0, false},
	} {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestUpCacheFlags(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		mem     int64
		dir     string
		disk    int64
		min     int64
		errText string
	}{
		{"defaults: memory only", nil, 64 << 20, "", 0, 64 << 10, ""},
		{"memory size", []string{"--cache-size", "128MiB"}, 128 << 20, "", 0, 64 << 10, ""},
		{"a directory turns the disk tier on", []string{"--cache-disk", "/var/cache/pier"}, 64 << 20, "/var/cache/pier", 1 << 30, 64 << 10, ""},
		{"a size turns it on", []string{"--cache-disk-size", "2G"}, 64 << 20, "", 2 << 30, 64 << 10, ""},
		{"threshold", []string{"--cache-disk", "d", "--cache-disk-min", "1KiB"}, 64 << 20, "d", 1 << 30, 1 << 10, ""},
		{"threshold alone leaves it off", []string{"--cache-disk-min", "1K"}, 64 << 20, "", 0, 1 << 10, ""},
		{"zero threshold", []string{"--cache-disk-min", "0"}, 0, "", 0, 0, "--cache-disk-min"},
		{"bad size", []string{"--cache-disk-size", "lots"}, 0, "", 0, 0, "--cache-disk-size \"lots\""},
		{"bad memory", []string{"--cache-size", "0"}, 0, "", 0, 0, "--cache-size"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up, ok := upWith(t, tt.args, tt.errText)
			if !ok {
				return
			}
			if up.CacheBytes != tt.mem || up.CacheDisk != tt.dir || up.CacheDiskBytes != tt.disk || up.CacheDiskMin != tt.min {
				t.Errorf("got memory %d, disk %q %d, min %d; want %d, %q %d, %d",
					up.CacheBytes, up.CacheDisk, up.CacheDiskBytes, up.CacheDiskMin, tt.mem, tt.dir, tt.disk, tt.min)
			}
		})
	}
}

// FuzzParseSize: any input gives a size or an error, never a panic; a
// size is -1 (the "0" of no limit) or positive, and the bytes it reads
// print back to themselves.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "64K", "1KiB", "256mib", "2G", "10B", " 7 ", "1.5M", "-1K", "9223372036854775807", "4611686018427387904K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n != -1 && n <= 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		if n > 0 {
			if back, err := parseSize(strconv.FormatInt(n, 10)); err != nil || back != n {
				t.Fatalf("parseSize(%q) = %d, which reads back as %d, %v", s, n, back, err)
			}
		}
	})
}

// upWith runs "pier up ARGS" with a hook in place of the engine and
// returns the options the engine would get; ok is false when the command
// failed, as it must (naming errText) when errText is set.
func upWith(t *testing.T, args []string, errText string) (up UpOptions, ok bool) {
	t.Helper()
	a := testCLI(t, map[string]string{"PIER_HOME": t.TempDir()})
	a.hooks = Hooks{Up: func(ctx context.Context, o UpOptions) error { up = o; return nil }}
	r := a.execute(t, "", append([]string{"up"}, args...)...)
	if errText != "" {
		if r.code == 0 || !strings.Contains(r.stderr, errText) {
			t.Errorf("exit %d, stderr %q; want an error naming %s", r.code, r.stderr, errText)
		}
		return up, false
	}
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	return up, true
}
