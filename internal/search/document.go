package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/document"
	index "github.com/blevesearch/bleve_index_api"
)

// Names of the bleve fields pier keeps beside a document's own fields.
const (
	fieldSource     = "_source"      // the document as sent, stored
	fieldVersion    = "_version"     // its version, stored
	fieldFieldNames = "_field_names" // the paths it has values for (for exists)
)

// metadataFields are names Elasticsearch keeps for itself.
var metadataFields = map[string]bool{
	"_id": true, "_index": true, "_source": true, "_version": true, "_field_names": true,
	"_routing": true, "_seq_no": true, "_primary_term": true, "_ignored": true, "_score": true,
}

// analyzerSource gives the analyzers an index was created with.
type analyzerSource interface {
	AnalyzerNamed(name string) analysis.Analyzer
}

// builder turns one JSON document into a bleve document, following the
// mapping and, when the mapping is dynamic and grow is set, adding new
// fields to it the way Elasticsearch's dynamic mapping does. Without grow,
// a new field makes build fail with errGrow.
type builder struct {
	meta      *meta
	analyzers analyzerSource
	grow      bool
	changed   bool // the mapping got new fields
	id        string
	doc       *document.Document
	names     map[string]bool
	// highlight, when set, makes text fields stored (for the highlighter,
	// which reads values from the document) instead of indexed.
	highlight bool
}

// errGrow says that a document needs fields the mapping does not have yet.
var errGrow = &Error{Status: 500, Type: "pier_mapping_grow", Reason: "the mapping must grow"}

// parseSource reads a document's JSON; it must be an object.
func parseSource(src []byte) (map[string]any, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		e := jsonError(err)
		e.Type = typeMapperParsing
		e.Reason = "failed to parse: " + e.Reason
		return nil, e
	}
	if obj == nil {
		return nil, badRequest(typeMapperParsing, "failed to parse: the document must be a JSON object")
	}
	if dec.More() {
		return nil, badRequest(typeMapperParsing, "failed to parse: unexpected data after the document")
	}
	return obj, nil
}

// build makes the bleve document for id with source src at version.
func (b *builder) build(id string, src []byte, obj map[string]any, version int64) (*document.Document, error) {
	b.id = id
	b.doc = document.NewDocument(id)
	b.names = map[string]bool{}
	if err := b.object("", obj, b.meta.Mapping.Properties, nil); err != nil {
		return nil, err
	}
	if b.highlight {
		return b.doc, nil
	}
	b.doc.AddField(document.NewTextFieldWithIndexingOptions(fieldSource, nil, src, index.StoreField))
	b.doc.AddField(document.NewTextFieldWithIndexingOptions(fieldVersion, nil, []byte(strconv.FormatInt(version, 10)), index.StoreField))
	kw := b.analyzers.AnalyzerNamed("keyword")
	for _, name := range slices.Sorted(maps.Keys(b.names)) {
		b.doc.AddField(document.NewTextFieldCustom(fieldFieldNames, nil, []byte(name), index.IndexField, kw))
	}
	return b.doc, nil
}

func (b *builder) object(prefix string, obj map[string]any, props map[string]*Property, ap []uint64) error {
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		val := obj[key]
		path := prefix + key
		if key == "" {
			return badRequest(typeMapperParsing, "field name cannot be an empty string")
		}
		if prefix == "" && metadataFields[key] {
			return badRequest(typeMapperParsing, "field [%s] is a metadata field and cannot be added inside a document", key)
		}
		p := props[key]
		if p == nil {
			if strings.Contains(key, ".") {
				// {"a.b": 1} means {"a": {"b": 1}}
				head, rest, _ := strings.Cut(key, ".")
				if err := b.object(prefix, map[string]any{head: map[string]any{rest: val}}, props, ap); err != nil {
					return err
				}
				continue
			}
			var err error
			if p, err = b.newField(path, val); err != nil {
				return err
			}
			if p == nil {
				continue
			}
			props[key] = p
		}
		if err := b.value(path, p, val, ap); err != nil {
			return err
		}
	}
	return nil
}

// newField applies the dynamic mapping rules to a field not mapped yet;
// nil means the field is not indexed (dynamic false, or no value to tell
// its type by).
func (b *builder) newField(path string, val any) (*Property, error) {
	switch b.meta.Mapping.Dynamic {
	case "false":
		return nil, nil
	case "strict":
		return nil, badRequest(typeStrictMapping, "mapping set to strict, dynamic introduction of [%s] within [_doc] is not allowed", path)
	}
	for {
		arr, ok := val.([]any)
		if !ok {
			break
		}
		if len(arr) == 0 {
			return nil, nil
		}
		val = firstNonNull(arr)
	}
	var p *Property
	switch v := val.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		p = &Property{Properties: map[string]*Property{}}
	case bool:
		p = &Property{Type: "boolean"}
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			p = &Property{Type: "float"}
		} else {
			p = &Property{Type: "long"}
		}
	case string:
		if looksLikeDate(v) {
			p = &Property{Type: "date"}
		} else {
			p = &Property{Type: "text", Fields: map[string]*Property{"keyword": {Type: "keyword", IgnoreAbove: 256}}}
		}
	default:
		return nil, badRequest(typeMapperParsing, "cannot map field [%s]", path)
	}
	if !b.grow {
		return nil, errGrow
	}
	b.changed = true
	return p, nil
}

func firstNonNull(arr []any) any {
	for _, v := range arr {
		if v != nil {
			return v
		}
	}
	return nil
}

func (b *builder) value(path string, p *Property, val any, ap []uint64) error {
	switch v := val.(type) {
	case nil:
		return nil
	case []any:
		for i, x := range v {
			if err := b.value(path, p, x, append(slices.Clip(ap), uint64(i))); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if p.kind() != kindObject {
			return b.malformed(path, p, val, "tried to parse field as object, but found a concrete value in the mapping")
		}
		if p.Properties == nil {
			if !b.grow {
				return errGrow
			}
			p.Properties = map[string]*Property{}
		}
		b.names[path] = true
		return b.object(path+".", v, p.Properties, ap)
	}
	if p.kind() == kindObject {
		return badRequest(typeMapperParsing, "object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", path, path)
	}
	if err := b.leaf(path, p, val, ap); err != nil {
		return err
	}
	for _, sub := range slices.Sorted(maps.Keys(p.Fields)) {
		if err := b.leaf(path+"."+sub, p.Fields[sub], val, ap); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) leaf(path string, p *Property, val any, ap []uint64) error {
	if !p.indexed() {
		return nil
	}
	var f document.Field
	switch p.kind() {
	case kindText:
		s := scalarString(val)
		opts := index.IndexField | index.IncludeTermVectors
		if b.highlight {
			opts = index.StoreField
		}
		f = document.NewTextFieldCustom(path, ap, []byte(s), opts, b.analyzers.AnalyzerNamed(b.meta.indexAnalyzer(p)))
	case kindKeyword:
		s := scalarString(val)
		if p.IgnoreAbove > 0 && len([]rune(s)) > p.IgnoreAbove {
			return nil
		}
		f = document.NewTextFieldCustom(path, ap, []byte(s), index.IndexField|index.DocValues, b.analyzers.AnalyzerNamed("keyword"))
	case kindNumber:
		n, err := toNumber(val)
		if err != nil {
			return b.malformed(path, p, val, err.Error())
		}
		f = document.NewNumericFieldWithIndexingOptions(path, ap, n, index.IndexField|index.DocValues)
	case kindDate:
		t, err := parseDate(val, p.Format)
		if err != nil {
			return b.malformed(path, p, val, err.Error())
		}
		df, err := document.NewDateTimeFieldWithIndexingOptions(path, ap, t, time.RFC3339Nano, index.IndexField|index.DocValues)
		if err != nil {
			return b.malformed(path, p, val, err.Error())
		}
		f = df
	case kindBool:
		v, err := toBool(val)
		if err != nil {
			return b.malformed(path, p, val, err.Error())
		}
		f = document.NewBooleanFieldWithIndexingOptions(path, ap, v, index.IndexField|index.DocValues)
	}
	if b.highlight && p.kind() != kindText {
		return nil
	}
	b.doc.AddField(f)
	b.names[path] = true
	return nil
}

func (b *builder) malformed(path string, p *Property, val any, why string) error {
	preview := fmt.Sprint(val)
	if len(preview) > 40 {
		preview = preview[:40] + "..."
	}
	return badRequest(typeMapperParsing, "failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s' (%s)", path, p.Type, b.id, preview, why)
}

// scalarString is a value as text: Elasticsearch indexes 12 and true in a
// text or keyword field as "12" and "true".
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

func toNumber(v any) (float64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		return x, nil
	case bool:
		return 0, fmt.Errorf("a boolean is not a number")
	default:
		return 0, fmt.Errorf("not a number")
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf("not a number")
	}
	return n, nil
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch x {
		case "true":
			return true, nil
		case "false", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("only true or false are booleans")
}

var dateLike = regexp.MustCompile(`^\d{4}[-/]\d{2}[-/]\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$`)

// looksLikeDate is Elasticsearch's dynamic date detection: a string in
// one of the default formats becomes a date field.
func looksLikeDate(s string) bool {
	if !dateLike.MatchString(s) {
		return false
	}
	_, err := parseDate(s, "")
	return err == nil
}

// defaultLayouts are strict_date_optional_time and the slash forms of
// Elasticsearch's dynamic date formats.
var defaultLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02",
	"2006-01", "2006", "2006/01/02 15:04:05", "2006/01/02 15:04:05 Z0700", "2006/01/02",
	"2006-01-02 15:04:05", "2006-01-02 15:04:05.999999999",
}

// dateLayouts turns an Elasticsearch date format ("yyyy-MM-dd||epoch_millis")
// into Go layouts; "epoch_millis" and "epoch_second" stay as they are.
func dateLayouts(format string) ([]string, error) {
	if format == "" {
		return append(slices.Clone(defaultLayouts), "epoch_millis"), nil
	}
	var out []string
	repl := strings.NewReplacer("yyyy", "2006", "MM", "01", "dd", "02", "HH", "15", "mm", "04",
		"ss", "05", "SSS", "000", "'T'", "T", "XXX", "Z07:00", "Z", "Z0700")
	for _, f := range strings.Split(format, "||") {
		switch f {
		case "strict_date_optional_time", "date_optional_time", "strict_date_optional_time_nanos", "date_time", "strict_date_time":
			out = append(out, defaultLayouts...)
		case "epoch_millis", "epoch_second":
			out = append(out, f)
		case "date", "strict_date":
			out = append(out, "2006-01-02")
		default:
			if strings.ContainsAny(strings.ReplaceAll(strings.ReplaceAll(f, "'T'", ""), "yMdHmsSXZ", ""), "abcefghijklnopqrtuvwxABCDEFGIJKLNOPQRTUVWY") {
				return nil, unsupported("date format [%s]", f)
			}
			out = append(out, repl.Replace(f))
		}
	}
	return out, nil
}

// parseDate reads a date value: a string in one of the format's layouts,
// or a number of epoch milliseconds (or seconds with epoch_second).
func parseDate(v any, format string) (time.Time, error) {
	layouts, err := dateLayouts(format)
	if err != nil {
		return time.Time{}, err
	}
	s := scalarString(v)
	for _, l := range layouts {
		switch l {
		case "epoch_millis", "epoch_second":
			n, err := strconv.ParseFloat(s, 64)
			if err != nil {
				continue
			}
			if l == "epoch_second" {
				n *= 1000
			}
			return time.UnixMilli(int64(n)).UTC(), nil
		default:
			if t, err := time.Parse(l, s); err == nil {
				return t.UTC(), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("not a date in format %q", orDefault(format, "strict_date_optional_time||epoch_millis"))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
