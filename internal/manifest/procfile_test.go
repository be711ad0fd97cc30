package manifest

import (
	"reflect"
	"testing"
	"time"
)

func TestParseProcfile(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]string
	}{
		{"one", "web: gunicorn app:app\n", map[string]string{"web": "gunicorn app:app"}},
		{"several", "web: node server.js\nworker: node worker.js --queue=a:b\n", map[string]string{"web": "node server.js", "worker": "node worker.js --queue=a:b"}},
		{"comments and blanks", "# processes\n\nweb: ./app   \n  # indented comment\n\r\n", map[string]string{"web": "./app"}},
		{"crlf", "web: ./app\r\nclock: ./clock\r\n", map[string]string{"web": "./app", "clock": "./clock"}},
		{"no final newline", "web: ./app", map[string]string{"web": "./app"}},
		{"indented", "  web:./app", map[string]string{"web": "./app"}},
		{"space before colon", "web : ./app", map[string]string{"web": "./app"}},
		{"names", "release_phase-2: ./migrate\n", map[string]string{"release_phase-2": "./migrate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseProcfile("Procfile", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Processes, tt.want) {
				t.Errorf("got %q, want %q", m.Processes, tt.want)
			}
			if m.Health.Timeout != 30*time.Second || m.Health.Interval != 500*time.Millisecond {
				t.Errorf("got health %+v, want the defaults", m.Health)
			}
		})
	}
}

func TestParseProcfileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"empty", "", "Procfile:1:1: processes: at least one process is required (or static, for a static site)"},
		{"comments only", "# web: x\n", "Procfile:1:1: processes: at least one process is required (or static, for a static site)"},
		{"no colon", "web: ./app\nworker ./w\n", `Procfile:2:1: processes: want "type: command", found no ":"`},
		{"bad type", "\n  Web: ./app\n", `Procfile:2:3: processes.Web: invalid process type "Web": use lower-case letters, digits, '_' and '-', starting with a letter, at most 30 characters`},
		{"empty type", ": ./app\n", `Procfile:1:1: processes[""]: invalid process type "": use lower-case letters, digits, '_' and '-', starting with a letter, at most 30 characters`},
		{"empty command", "web:   \n", "Procfile:1:8: processes.web: command must not be empty"},
		{"duplicate", "web: a\nworker: b\nweb: c\n", "Procfile:3:1: processes.web: duplicate process type (first at line 1)"},
		{"several", "web a\nworker:\n", `Procfile:1:1: processes: want "type: command", found no ":"` + "\nProcfile:2:8: processes.worker: command must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseProcfile("Procfile", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseProcfile succeeded with %+v, want error %q", m, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
