package search

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/blevesearch/bleve/v2/mapping"

	// Analyzers an index can name; importing registers them with bleve.
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/simple"
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	_ "github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	_ "github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	_ "github.com/blevesearch/bleve/v2/analysis/lang/en"
	_ "github.com/blevesearch/bleve/v2/analysis/lang/fr"
	_ "github.com/blevesearch/bleve/v2/analysis/lang/pt"
	_ "github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	_ "github.com/blevesearch/bleve/v2/analysis/token/porter"
	_ "github.com/blevesearch/bleve/v2/analysis/token/unique"
	_ "github.com/blevesearch/bleve/v2/analysis/tokenizer/single"
	_ "github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	_ "github.com/blevesearch/bleve/v2/analysis/tokenizer/whitespace"
)

// kind is how pier indexes a field, whatever Elasticsearch type named it.
type kind int

const (
	kindObject kind = iota
	kindText
	kindKeyword
	kindNumber
	kindDate
	kindBool
)

// fieldTypes maps the Elasticsearch field types pier supports to kinds.
var fieldTypes = map[string]kind{
	"object": kindObject, "text": kindText, "match_only_text": kindText,
	"keyword": kindKeyword, "constant_keyword": kindKeyword, "wildcard": kindKeyword,
	"long": kindNumber, "integer": kindNumber, "short": kindNumber, "byte": kindNumber,
	"double": kindNumber, "float": kindNumber, "half_float": kindNumber,
	"scaled_float": kindNumber, "unsigned_long": kindNumber,
	"date": kindDate, "boolean": kindBool,
}

// analyzers maps Elasticsearch's built-in analyzer names to bleve's.
var analyzers = map[string]string{
	"standard": "standard", "simple": "simple", "keyword": "keyword",
	"whitespace": "pier_whitespace",
	"english":    "en", "french": "fr", "portuguese": "pt", "brazilian": "pt", "cjk": "cjk",
}

// Property is one field of a mapping, in Elasticsearch's JSON form.
type Property struct {
	Type           string               `json:"type,omitempty"` // "" for objects
	Analyzer       string               `json:"analyzer,omitempty"`
	SearchAnalyzer string               `json:"search_analyzer,omitempty"`
	Index          *bool                `json:"index,omitempty"`
	IgnoreAbove    int                  `json:"ignore_above,omitempty"`
	Format         string               `json:"format,omitempty"`
	Fields         map[string]*Property `json:"fields,omitempty"`     // multi-fields: same value, another type
	Properties     map[string]*Property `json:"properties,omitempty"` // object fields
}

func (p *Property) kind() kind {
	if p.Type == "" {
		return kindObject
	}
	return fieldTypes[p.Type]
}

func (p *Property) indexed() bool { return p.Index == nil || *p.Index }

// Mapping is an index's mapping: its fields and what to do with new ones.
type Mapping struct {
	Dynamic    string               `json:"dynamic,omitempty"` // "true" (default), "false" or "strict"
	Properties map[string]*Property `json:"properties"`
}

// Settings are the index settings pier keeps.
type Settings struct {
	Shards   int `json:"number_of_shards"`
	Replicas int `json:"number_of_replicas"`
	// DefaultAnalyzer analyses text fields that name none (an
	// Elasticsearch name, or one of Analyzers).
	DefaultAnalyzer string `json:"default_analyzer,omitempty"`
	// Analyzers are the index's own analyzers by name.
	Analyzers map[string]CustomAnalyzer `json:"analyzers,omitempty"`
}

// CustomAnalyzer is an analyzer from settings.analysis.analyzer.
type CustomAnalyzer struct {
	Type       string   `json:"type"` // "custom" or a built-in name
	Tokenizer  string   `json:"tokenizer,omitempty"`
	Filter     []string `json:"filter,omitempty"`
	CharFilter []string `json:"char_filter,omitempty"`
}

// meta is what pier stores beside an index's documents.
type meta struct {
	Mapping  Mapping  `json:"mapping"`
	Settings Settings `json:"settings"`
	Created  int64    `json:"created"` // Unix milliseconds
	UUID     string   `json:"uuid"`
}

func (m *meta) clone() *meta {
	data, _ := json.Marshal(m)
	var c meta
	json.Unmarshal(data, &c)
	if c.Mapping.Properties == nil {
		c.Mapping.Properties = map[string]*Property{}
	}
	return &c
}

// bleveAnalyzer is the bleve name of an index analyzer named the
// Elasticsearch way.
func (m *meta) bleveAnalyzer(name string) (string, bool) {
	if name == "" || name == "default" {
		if m.Settings.DefaultAnalyzer == "" {
			return "standard", true
		}
		name = m.Settings.DefaultAnalyzer
	}
	if _, ok := m.Settings.Analyzers[name]; ok {
		return "custom_" + name, true
	}
	b, ok := analyzers[name]
	return b, ok
}

// indexAnalyzer and searchAnalyzer are the bleve analyzers of a text field.
func (m *meta) indexAnalyzer(p *Property) string {
	a, _ := m.bleveAnalyzer(p.Analyzer)
	return a
}

func (m *meta) searchAnalyzer(p *Property) string {
	if p.SearchAnalyzer != "" {
		a, _ := m.bleveAnalyzer(p.SearchAnalyzer)
		return a
	}
	return m.indexAnalyzer(p)
}

// field finds a field by its dotted path ("author.name", "title.raw").
func (m *Mapping) field(path string) *Property {
	props := m.Properties
	var cur *Property
	parts := strings.Split(path, ".")
	for i := 0; i < len(parts); i++ {
		if props != nil {
			if p, ok := props[parts[i]]; ok {
				cur, props = p, p.Properties
				continue
			}
		}
		if cur != nil && cur.Fields != nil {
			if p, ok := cur.Fields[parts[i]]; ok && i == len(parts)-1 {
				return p
			}
		}
		return nil
	}
	return cur
}

// leaves calls fn for every indexed non-object field, multi-fields
// included, in a stable order.
func (m *Mapping) leaves(fn func(path string, p *Property)) {
	var walk func(prefix string, props map[string]*Property)
	walk = func(prefix string, props map[string]*Property) {
		for _, name := range slices.Sorted(maps.Keys(props)) {
			p := props[name]
			path := prefix + name
			if p.kind() == kindObject {
				walk(path+".", p.Properties)
				continue
			}
			fn(path, p)
			for _, sub := range slices.Sorted(maps.Keys(p.Fields)) {
				fn(path+"."+sub, p.Fields[sub])
			}
		}
	}
	walk("", m.Properties)
}

// parseCreateBody reads the body of PUT /<index>: settings and mappings.
func parseCreateBody(data []byte) (*meta, error) {
	m := &meta{Mapping: Mapping{Properties: map[string]*Property{}}, Settings: Settings{Shards: 1}}
	if len(bytes.TrimSpace(data)) == 0 {
		return m, nil
	}
	var body map[string]json.RawMessage
	if err := decodeStrict(data, &body); err != nil {
		return nil, err
	}
	for key, raw := range body {
		switch key {
		case "settings":
			if err := parseSettings(raw, &m.Settings); err != nil {
				return nil, err
			}
		case "mappings":
			if err := parseMapping(raw, &m.Mapping); err != nil {
				return nil, err
			}
		case "aliases":
			if len(bytes.TrimSpace(raw)) > 2 {
				return nil, unsupported("index aliases")
			}
		default:
			return nil, parsingError("unknown key [%s] for create index", key)
		}
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseSettings reads index settings, flat ("index.number_of_shards") or
// nested ({"index": {"number_of_shards": 1}}).
func parseSettings(raw json.RawMessage, s *Settings) error {
	var in map[string]any
	if err := decodeStrict(raw, &in); err != nil {
		return err
	}
	flat := map[string]any{}
	var flatten func(prefix string, v map[string]any)
	flatten = func(prefix string, v map[string]any) {
		for k, x := range v {
			if sub, ok := x.(map[string]any); ok && !strings.HasPrefix(prefix+k, "analysis.analyzer.") {
				flatten(prefix+k+".", sub)
				continue
			}
			flat[prefix+k] = x
		}
	}
	flatten("", in)
	for k, v := range flat {
		k = strings.TrimPrefix(k, "index.")
		switch {
		case k == "number_of_shards" || k == "number_of_replicas":
			n, err := intSetting(v)
			if err != nil {
				return illegalArgument("failed to parse value [%v] for setting [index.%s]", v, k)
			}
			if k == "number_of_shards" {
				s.Shards = n
			} else {
				s.Replicas = n
			}
		case k == "refresh_interval" || k == "max_result_window":
			// accepted: pier makes writes visible at once and allows 10000 hits
		case strings.HasPrefix(k, "analysis.analyzer."):
			name := strings.TrimPrefix(k, "analysis.analyzer.")
			def, ok := v.(map[string]any)
			if !ok {
				return illegalArgument("analyzer [%s] must be an object", name)
			}
			a, err := parseAnalyzer(name, def)
			if err != nil {
				return err
			}
			if name == "default" {
				s.DefaultAnalyzer = a.Type
				if a.Type == "custom" {
					return unsupported("a custom default analyzer (give it a name and use it in the mapping)")
				}
				continue
			}
			if s.Analyzers == nil {
				s.Analyzers = map[string]CustomAnalyzer{}
			}
			s.Analyzers[name] = a
		default:
			return unsupported("index setting [index.%s]", k)
		}
	}
	return nil
}

func intSetting(v any) (int, error) {
	var n int
	_, err := fmt.Sscan(fmt.Sprint(v), &n)
	return n, err
}

// Tokenizers and filters a custom analyzer may use, Elasticsearch name ->
// bleve name.
var (
	tokenizers   = map[string]string{"standard": "unicode", "whitespace": "whitespace", "keyword": "single"}
	tokenFilters = map[string]string{"lowercase": "to_lower", "porter_stem": "stemmer_porter", "unique": "unique",
		"english_stop": "stop_en", "french_stop": "stop_fr", "portuguese_stop": "stop_pt",
		"french_elision": "elision_fr", "cjk_bigram": "cjk_bigram", "cjk_width": "cjk_width"}
	charFilters = map[string]string{"asciifolding": "asciifolding"}
)

func parseAnalyzer(name string, def map[string]any) (CustomAnalyzer, error) {
	var a CustomAnalyzer
	data, _ := json.Marshal(def)
	if err := decodeStrict(data, &a); err != nil {
		return a, illegalArgument("analyzer [%s]: %s", name, esError(err).Reason)
	}
	if a.Type == "" {
		a.Type = "custom"
	}
	if a.Type != "custom" {
		if _, ok := analyzers[a.Type]; !ok {
			return a, unsupported("analyzer type [%s] (analyzer [%s])", a.Type, name)
		}
		return a, nil
	}
	if _, ok := tokenizers[a.Tokenizer]; !ok {
		return a, unsupported("tokenizer [%s] (analyzer [%s]; pier has standard, whitespace, keyword)", a.Tokenizer, name)
	}
	for _, f := range a.Filter {
		if _, ok := tokenFilters[f]; !ok {
			return a, unsupported("token filter [%s] (analyzer [%s])", f, name)
		}
	}
	for _, f := range a.CharFilter {
		if _, ok := charFilters[f]; !ok {
			return a, unsupported("char filter [%s] (analyzer [%s])", f, name)
		}
	}
	return a, nil
}

// parseMapping reads {"dynamic": ..., "properties": {...}}; other keys of
// Elasticsearch mappings are refused by name.
func parseMapping(raw json.RawMessage, m *Mapping) error {
	var in map[string]json.RawMessage
	if err := decodeStrict(raw, &in); err != nil {
		return err
	}
	for k, v := range in {
		switch k {
		case "dynamic":
			var d any
			json.Unmarshal(v, &d)
			switch fmt.Sprint(d) {
			case "true", "false", "strict":
				m.Dynamic = fmt.Sprint(d)
			default:
				return badRequest(typeMapperParsing, "dynamic must be one of [true, false, strict], got [%v]", d)
			}
		case "properties":
			if m.Properties == nil {
				m.Properties = map[string]*Property{}
			}
			if err := parseProperties(v, "", m.Properties); err != nil {
				return err
			}
		case "_source", "_meta", "date_detection", "numeric_detection", "dynamic_date_formats":
			// accepted and ignored: pier always keeps _source and detects dates
		default:
			return unsupported("mapping parameter [%s]", k)
		}
	}
	return nil
}

// Parameters pier accepts on fields and ignores: they tune storage, and
// pier's defaults are fine for them.
var ignoredParams = map[string]bool{
	"store": true, "doc_values": true, "norms": true, "index_options": true, "term_vector": true,
	"boost": true, "coerce": true, "eager_global_ordinals": true, "similarity": true,
	"position_increment_gap": true, "scaling_factor": true, "ignore_malformed": true, "dynamic": true,
}

func parseProperties(raw json.RawMessage, prefix string, into map[string]*Property) error {
	var props map[string]map[string]json.RawMessage
	if err := decodeStrict(raw, &props); err != nil {
		return badRequest(typeMapperParsing, "properties of [%s] must be objects", strings.TrimSuffix(prefix, "."))
	}
	for name, def := range props {
		if name == "" || strings.Contains(name, ".") {
			return badRequest(typeMapperParsing, "field name [%s%s] must be non-empty and use objects rather than dots", prefix, name)
		}
		p, err := parseProperty(prefix+name, def)
		if err != nil {
			return err
		}
		if old := into[name]; old != nil && (old.Type != p.Type || old.Analyzer != p.Analyzer) {
			return illegalArgument("mapper [%s%s] cannot be changed from type [%s] to [%s]", prefix, name, old.Type, p.Type)
		}
		if old := into[name]; old != nil && p.kind() == kindObject {
			maps.Copy(old.Properties, p.Properties)
			continue
		}
		into[name] = p
	}
	return nil
}

func parseProperty(path string, def map[string]json.RawMessage) (*Property, error) {
	p := &Property{}
	if t, ok := def["type"]; ok {
		if err := json.Unmarshal(t, &p.Type); err != nil {
			return nil, badRequest(typeMapperParsing, "type of [%s] must be a string", path)
		}
		if p.Type == "object" {
			p.Type = ""
		}
		if _, ok := fieldTypes[p.Type]; !ok && p.Type != "" {
			if p.Type == "nested" || p.Type == "geo_point" || p.Type == "dense_vector" || p.Type == "ip" || p.Type == "flattened" {
				return nil, unsupported("field type [%s] (field [%s])", p.Type, path)
			}
			return nil, badRequest(typeMapperParsing, "no handler for type [%s] declared on field [%s]", p.Type, path)
		}
	}
	for key, v := range def {
		var err error
		switch {
		case key == "type":
		case key == "properties" && p.kind() == kindObject:
			p.Properties = map[string]*Property{}
			err = parseProperties(v, path+".", p.Properties)
		case key == "fields" && p.kind() != kindObject:
			p.Fields = map[string]*Property{}
			err = parseProperties(v, path+".", p.Fields)
			for name, f := range p.Fields {
				if f.kind() == kindObject {
					return nil, badRequest(typeMapperParsing, "multi-field [%s.%s] must have a type", path, name)
				}
			}
		case (key == "analyzer" || key == "search_analyzer") && p.kind() == kindText:
			var a string
			if err = json.Unmarshal(v, &a); err == nil {
				if key == "analyzer" {
					p.Analyzer = a
				} else {
					p.SearchAnalyzer = a
				}
			}
		case key == "index" && p.kind() != kindObject:
			var b bool
			if err = json.Unmarshal(v, &b); err == nil {
				p.Index = &b
			}
		case key == "ignore_above" && p.kind() == kindKeyword:
			err = json.Unmarshal(v, &p.IgnoreAbove)
		case key == "format" && p.kind() == kindDate:
			if err = json.Unmarshal(v, &p.Format); err == nil {
				_, err = dateLayouts(p.Format)
			}
		case key == "enabled" && p.kind() == kindObject:
			return nil, unsupported("[enabled] on object [%s]", path)
		case key == "copy_to" || key == "null_value" || key == "normalizer" || key == "fielddata":
			return nil, unsupported("field parameter [%s] (field [%s])", key, path)
		case ignoredParams[key]:
		default:
			t := p.Type
			if t == "" {
				t = "object"
			}
			return nil, badRequest(typeMapperParsing, "unknown parameter [%s] on mapper [%s] of type [%s]", key, path, t)
		}
		if err != nil {
			if e, ok := err.(*Error); ok {
				return nil, e
			}
			return nil, badRequest(typeMapperParsing, "failed to parse parameter [%s] of field [%s]: %v", key, path, err)
		}
	}
	return p, nil
}

// check verifies that every analyzer the mapping names exists.
func (m *meta) check() error {
	if _, ok := m.bleveAnalyzer(""); !ok {
		return unsupported("analyzer [%s]", m.Settings.DefaultAnalyzer)
	}
	var err error
	m.Mapping.leaves(func(path string, p *Property) {
		for _, a := range []string{p.Analyzer, p.SearchAnalyzer} {
			if _, ok := m.bleveAnalyzer(a); !ok && err == nil {
				err = badRequest(typeMapperParsing, "analyzer [%s] has not been configured in mappings (field [%s]; built in: english, french, portuguese, brazilian, cjk, standard, simple, whitespace, keyword)", a, path)
			}
		}
	})
	return err
}

// bleveMapping is the bleve index mapping an index is created with: it
// only carries analyzers and the scoring model, since pier builds bleve
// documents itself.
func (m *meta) bleveMapping() (*mapping.IndexMappingImpl, error) {
	im := mapping.NewIndexMapping()
	im.ScoringModel = "bm25"
	im.DefaultMapping.Dynamic = false
	if err := im.AddCustomAnalyzer("pier_whitespace", map[string]any{"type": "custom", "tokenizer": "whitespace"}); err != nil {
		return nil, err
	}
	for name, a := range m.Settings.Analyzers {
		def := map[string]any{}
		if a.Type != "custom" {
			// an alias of a built-in analyzer: bleve has no alias, so
			// rebuild it from the registry's analyzer of that name
			def = map[string]any{"type": "custom", "tokenizer": "unicode", "token_filters": []any{"to_lower"}}
			if a.Type != "standard" {
				base, _ := m.bleveAnalyzer(a.Type)
				def = map[string]any{"type": base}
			}
		} else {
			def["type"] = "custom"
			def["tokenizer"] = tokenizers[a.Tokenizer]
			var filters, chars []any
			for _, f := range a.Filter {
				filters = append(filters, tokenFilters[f])
			}
			for _, f := range a.CharFilter {
				chars = append(chars, charFilters[f])
			}
			if filters != nil {
				def["token_filters"] = filters
			}
			if chars != nil {
				def["char_filters"] = chars
			}
		}
		if err := im.AddCustomAnalyzer("custom_"+name, def); err != nil {
			return nil, illegalArgument("analyzer [%s]: %v", name, err)
		}
	}
	return im, nil
}

// decodeStrict decodes one JSON value, reporting syntax errors the way
// Elasticsearch does.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest(typeXContent, "unexpected data after the JSON object")
	}
	return nil
}

func jsonError(err error) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest(typeXContent, "failed to parse JSON at offset %d: %v", se.Offset, err)
	case errors.As(err, &te):
		return badRequest(typeXContent, "[%s] must be %s, got %s", te.Field, te.Type, te.Value)
	default:
		return badRequest(typeXContent, "failed to parse JSON: %v", err)
	}
}
