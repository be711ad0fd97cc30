package search

import (
	"html"
	"maps"
	"slices"
	"strings"

	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/highlight"
	"github.com/blevesearch/bleve/v2/search/highlight/fragmenter/simple"
	simplehl "github.com/blevesearch/bleve/v2/search/highlight/highlighter/simple"
)

// highlightRequest is the "highlight" part of a search. Fragments come
// from bleve's highlighter, fed with the term locations of each hit and a
// document rebuilt from its _source (pier does not store field values
// twice).
type highlightRequest struct {
	fields   map[string]hlField // field pattern -> options
	pre      string
	post     string
	escape   bool // encoder "html"
	defaults hlField
}

type hlField struct {
	size      int // fragment_size, characters
	fragments int // number_of_fragments; 0: the whole field
}

func parseHighlight(v any, m *meta) (*highlightRequest, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, parsingError("[highlight] must be an object")
	}
	h := &highlightRequest{fields: map[string]hlField{}, pre: "<em>", post: "</em>", defaults: hlField{size: 100, fragments: 5}}
	opts := func(o map[string]any, f *hlField) error {
		for k, v := range o {
			switch k {
			case "fragment_size":
				n, err := number(v)
				if err != nil || n < 1 {
					return parsingError("[highlight] fragment_size must be a positive number")
				}
				f.size = int(n)
			case "number_of_fragments":
				n, err := number(v)
				if err != nil || n < 0 {
					return parsingError("[highlight] number_of_fragments must be a non-negative number")
				}
				f.fragments = int(n)
			case "type", "require_field_match", "order", "fragmenter", "boundary_scanner", "boundary_chars", "boundary_max_scan", "phrase_limit", "max_analyzed_offset":
			case "pre_tags", "post_tags", "encoder", "fields", "tags_schema":
			default:
				return unsupported("[%s] in highlight", k)
			}
		}
		return nil
	}
	if err := opts(obj, &h.defaults); err != nil {
		return nil, err
	}
	for k, v := range obj {
		switch k {
		case "pre_tags", "post_tags":
			tags, err := stringList(v, k)
			if err != nil || len(tags) == 0 {
				return nil, parsingError("[highlight] %s must be a non-empty array of strings", k)
			}
			if k == "pre_tags" {
				h.pre = tags[0]
			} else {
				h.post = tags[0]
			}
		case "encoder":
			h.escape = v == "html"
		case "tags_schema":
			if v == "styled" {
				h.pre, h.post = `<em class="hlt1">`, "</em>"
			}
		}
	}
	add := func(name string, o any) error {
		f := h.defaults
		if om, ok := o.(map[string]any); ok {
			if err := opts(om, &f); err != nil {
				return err
			}
		}
		h.fields[name] = f
		return nil
	}
	switch fs := obj["fields"].(type) {
	case map[string]any:
		for name, o := range fs {
			if err := add(name, o); err != nil {
				return nil, err
			}
		}
	case []any:
		for _, item := range fs {
			im, ok := item.(map[string]any)
			if !ok {
				return nil, parsingError("[highlight] fields must hold objects")
			}
			for name, o := range im {
				if err := add(name, o); err != nil {
					return nil, err
				}
			}
		}
	default:
		return nil, parsingError("[highlight] requires [fields]")
	}
	return h, nil
}

// fragments returns the highlighted fragments of one hit by field.
func (h *highlightRequest) fragments(hit *search.DocumentMatch, src []byte, m *meta, analyzers analyzerSource) map[string][]string {
	if len(hit.Locations) == 0 || len(src) == 0 {
		return nil
	}
	obj, err := parseSource(src)
	if err != nil {
		return nil
	}
	b := &builder{meta: m, analyzers: analyzers, highlight: true}
	doc, err := b.build(hit.ID, src, obj, 0)
	if err != nil {
		return nil
	}
	out := map[string][]string{}
	for _, field := range slices.Sorted(maps.Keys(hit.Locations)) {
		opts, ok := h.optionsFor(field)
		if !ok {
			continue
		}
		size, n := opts.size, opts.fragments
		if n == 0 {
			size, n = 1<<30, 1
		}
		hl := simplehl.NewHighlighter(simple.NewFragmenter(size), &formatter{pre: h.pre, post: h.post, escape: h.escape}, "")
		frags := hl.BestFragmentsInField(hit, doc, field, n)
		var kept []string
		for _, f := range frags {
			if strings.Contains(f, h.pre) {
				kept = append(kept, f)
			}
		}
		if len(kept) > 0 {
			out[field] = kept
		}
	}
	return out
}

func (h *highlightRequest) optionsFor(field string) (hlField, bool) {
	if f, ok := h.fields[field]; ok {
		return f, true
	}
	for _, pat := range slices.Sorted(maps.Keys(h.fields)) {
		if wildcardMatch(pat, field) {
			return h.fields[pat], true
		}
	}
	return hlField{}, false
}

// formatter marks terms with the request's tags, escaping the text only
// with encoder "html", as Elasticsearch does.
type formatter struct {
	pre, post string
	escape    bool
}

var _ highlight.FragmentFormatter = (*formatter)(nil)

func (f *formatter) Format(frag *highlight.Fragment, locs highlight.TermLocations) string {
	var b strings.Builder
	text := func(s []byte) {
		if f.escape {
			b.WriteString(html.EscapeString(string(s)))
		} else {
			b.Write(s)
		}
	}
	cur := frag.Start
	for _, l := range locs {
		if l == nil || !l.ArrayPositions.Equals(frag.ArrayPositions) || l.Start < cur {
			continue
		}
		if l.End > frag.End {
			break
		}
		text(frag.Orig[cur:l.Start])
		b.WriteString(f.pre)
		text(frag.Orig[l.Start:l.End])
		b.WriteString(f.post)
		cur = l.End
	}
	text(frag.Orig[cur:frag.End])
	return b.String()
}
