package engine

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCacheDiskConfig: where the HTTP cache's disk tier goes for the flags
// pier up was given.
func TestCacheDiskConfig(t *testing.T) {
	home := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		dir     string
		bytes   int64
		wantDir string
	}{
		{"off", "", 0, ""},
		{"a size alone: under the home", "", 1 << 30, filepath.Join(home, "httpcache")},
		{"a directory", "/var/cache/pier", 0, "/var/cache/pier"},
		{"a relative directory", "bodies", 1 << 20, filepath.Join(wd, "bodies")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Home: home, CacheDisk: tt.dir, CacheDiskBytes: tt.bytes}
			if err := cfg.defaults(); err != nil {
				t.Fatal(err)
			}
			if cfg.CacheDisk != tt.wantDir {
				t.Errorf("CacheDisk %q, want %q", cfg.CacheDisk, tt.wantDir)
			}
		})
	}
}

// TestGatewayCacheDiskError: a disk tier that cannot be set up stops the
// start with an error that says so.
func TestGatewayCacheDiskError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := newGatewayCache(log, Config{CacheDisk: filepath.Join(file, "bodies")}); err == nil || !strings.Contains(err.Error(), "disk tier") {
		t.Errorf("err %v, want one about the disk tier", err)
	}
	g, err := newGatewayCache(log, Config{CacheDisk: filepath.Join(t.TempDir(), "bodies"), CacheDiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g.c.Close()
}
