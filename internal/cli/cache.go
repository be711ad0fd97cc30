package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"pier/internal/api"
)

func (a *cli) cacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the gateway's HTTP cache",
	}
	cmd.AddCommand(a.cachePurgeCmd())
	return cmd
}

// cachePurge is the body of POST /v1/apps/{app}/cache/purge.
type cachePurge struct {
	URLs     []string `json:"urls,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	All      bool     `json:"all,omitempty"`
}

func (a *cli) cachePurgeCmd() *cobra.Command {
	var (
		app string
		p   cachePurge
	)
	cmd := &cobra.Command{
		Use:   "purge [URL...]",
		Short: "Drop cached responses of an app, on every node",
		Long: `Purge drops an app's cached responses, by URL, path prefix or tag, on every
node's gateway; the next request goes to the app.

A URL is a path with its query ("/posts/1?page=2"), on every host of the app,
or an absolute URL ("https://blog.example.com/posts/1"), on that host only.
Tags are what the app sends in Cache-Tag or Surrogate-Key headers.

Apps purge the same way with their own token: POST $PIER_API/v1/apps/$PIER_APP/cache/purge
with Authorization: Bearer $PIER_TOKEN and {"urls":[...],"prefixes":[...],"tags":[...]}.`,
		Example: `  pier cache purge /comments/count
  pier cache purge --prefix /posts/ --app blog
  pier cache purge --tag post-42 --tag home
  pier cache purge --all`,
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			p.URLs = args
			if len(p.URLs) == 0 && len(p.Prefixes) == 0 && len(p.Tags) == 0 && !p.All {
				return usagef("say what to purge: URLs, --prefix, --tag or --all")
			}
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			n, err := purge(cmd, c, name, p)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Purged %d cached URL(s) of %s\n", n, name)
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	cmd.Flags().StringArrayVar(&p.Prefixes, "prefix", nil, "purge every URL under this path prefix (repeatable)")
	cmd.Flags().StringArrayVar(&p.Tags, "tag", nil, "purge every response tagged so (repeatable)")
	cmd.Flags().BoolVar(&p.All, "all", false, "purge everything the app has cached")
	return cmd
}

// purge calls the engine's purge route and returns how many URLs went on
// the node that answered.
func purge(cmd *cobra.Command, c *api.Client, app string, p cachePurge) (int, error) {
	body, _ := json.Marshal(p)
	u := strings.TrimRight(c.BaseURL, "/") + "/v1/apps/" + url.PathEscape(app) + "/cache/purge"
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, &api.UnreachableError{URL: c.BaseURL, Err: err}
		}
		return 0, fmt.Errorf("purge: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		Purged int    `json:"purged"`
		Error  string `json:"error"`
	}
	json.Unmarshal(raw, &out)
	if resp.StatusCode != http.StatusOK {
		msg := out.Error
		if msg == "" {
			msg = strings.TrimSpace(string(raw))
		}
		return 0, &api.APIError{Status: resp.StatusCode, Message: msg}
	}
	return out.Purged, nil
}
