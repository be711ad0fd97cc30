package cli

import (
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestIsTerminal(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cases := map[string]io.Reader{"pipe": r, "strings.Reader": strings.NewReader("x")}
	if runtime.GOOS == "linux" {
		cases["/dev/null"] = devnull // a character device, but not a terminal
	}
	for name, in := range cases {
		if isTerminal(in) {
			t.Errorf("isTerminal(%s) = true, want false", name)
		}
	}
}
