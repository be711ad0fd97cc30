package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"pier/internal/api"
)

func (a *cli) searchCmd() *cobra.Command {
	var (
		app    string
		size   int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "search [INDEX [QUERY...]]",
		Short: "List an app's search indexes, or search one",
		Long: `Without arguments, search lists the app's full-text indexes with their
document counts. With an index and a query, it runs the query (Lucene query
string syntax, as in Elasticsearch's query_string: words, "phrases",
field:value, AND/OR/NOT, fuzzy~, ranges [a TO b]) and prints the best hits with
the matching words marked.

Apps reach their indexes through $ELASTICSEARCH_URL with any Elasticsearch
client; this command uses the engine API and the admin token.`,
		Example: "  pier search\n  pier search articles 'quick fox'\n  pier search articles 'title:\"search engine\" AND tags:go' --size 5 --json",
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return a.searchIndexes(cmd.Context(), c, name, asJSON)
			}
			q := strings.Join(args[1:], " ")
			if q == "" {
				q = "*"
			}
			return a.searchQuery(cmd.Context(), c, name, args[0], q, size, asJSON)
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "the app (default: the name in ./pier.yaml)")
	cmd.Flags().IntVarP(&size, "size", "n", 10, "how many hits to print")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the Elasticsearch JSON answer")
	return cmd
}

// searchCall sends one request to the app's search API through the engine
// API and decodes the JSON answer into v.
func searchCall(ctx context.Context, c *api.Client, app, method, path string, body, v any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	u := strings.TrimRight(c.BaseURL, "/") + "/v1/apps/" + url.PathEscape(app) + "/search" + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
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
		return fmt.Errorf("cannot reach the engine API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error any `json:"error"`
		}
		json.Unmarshal(data, &e)
		msg := strings.TrimSpace(string(data))
		switch x := e.Error.(type) {
		case string:
			msg = x
		case map[string]any:
			msg = fmt.Sprintf("%v: %v", x["type"], x["reason"])
		}
		return &api.APIError{Status: resp.StatusCode, Message: msg}
	}
	return json.Unmarshal(data, v)
}

func (a *cli) searchIndexes(ctx context.Context, c *api.Client, app string, asJSON bool) error {
	var infos []struct {
		Index string `json:"index"`
		Docs  string `json:"docs.count"`
	}
	if err := searchCall(ctx, c, app, "GET", "/_cat/indices?format=json", nil, &infos); err != nil {
		return err
	}
	if asJSON {
		return a.printJSON(infos)
	}
	if len(infos) == 0 {
		fmt.Fprintf(a.stdout, "%s has no search indexes yet. Its processes create them through $ELASTICSEARCH_URL.\n", app)
		return nil
	}
	tw := table(a.stdout)
	fmt.Fprintln(tw, "INDEX\tDOCS")
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\n", i.Index, i.Docs)
	}
	return tw.Flush()
}

func (a *cli) searchQuery(ctx context.Context, c *api.Client, app, index, q string, size int, asJSON bool) error {
	body := map[string]any{
		"query":     map[string]any{"query_string": map[string]any{"query": q}},
		"size":      size,
		"highlight": map[string]any{"fields": map[string]any{"*": map[string]any{}}, "pre_tags": []string{"["}, "post_tags": []string{"]"}},
	}
	var out struct {
		Hits struct {
			Total struct {
				Value    int    `json:"value"`
				Relation string `json:"relation"`
			} `json:"total"`
			Hits []struct {
				ID        string              `json:"_id"`
				Score     *float64            `json:"_score"`
				Source    json.RawMessage     `json:"_source"`
				Highlight map[string][]string `json:"highlight"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if asJSON {
		var raw map[string]any
		if err := searchCall(ctx, c, app, "POST", "/"+url.PathEscape(index)+"/_search", body, &raw); err != nil {
			return err
		}
		return a.printJSON(raw)
	}
	if err := searchCall(ctx, c, app, "POST", "/"+url.PathEscape(index)+"/_search", body, &out); err != nil {
		return err
	}
	more := ""
	if out.Hits.Total.Relation == "gte" {
		more = "+"
	}
	fmt.Fprintf(a.stdout, "%d%s hits\n", out.Hits.Total.Value, more)
	for _, h := range out.Hits.Hits {
		score := "-"
		if h.Score != nil {
			score = fmt.Sprintf("%.3f", *h.Score)
		}
		fmt.Fprintf(a.stdout, "\n%s  (score %s)\n", h.ID, score)
		if len(h.Highlight) > 0 {
			for _, field := range slices.Sorted(maps.Keys(h.Highlight)) {
				fmt.Fprintf(a.stdout, "  %s: %s\n", field, strings.Join(h.Highlight[field], " … "))
			}
			continue
		}
		src := string(h.Source)
		if len(src) > 160 {
			src = src[:160] + "…"
		}
		fmt.Fprintf(a.stdout, "  %s\n", src)
	}
	return nil
}
