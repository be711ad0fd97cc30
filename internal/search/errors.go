package search

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an error the way Elasticsearch reports it: an HTTP status, an
// exception type such as "parsing_exception", and a reason a person can
// act on. Errors of any other type are answered as 500
// "exception" without their text reaching the client.
type Error struct {
	Status int    // HTTP status
	Type   string // Elasticsearch exception type
	Reason string
	Index  string // the index concerned, if any
	Cause  error  // logged, never sent
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Type + ": " + e.Reason + ": " + e.Cause.Error()
	}
	return e.Type + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Cause }

// Exception types pier answers with. They are Elasticsearch's names, so
// clients and people recognise them; ErrUnsupported is pier's own and
// names what pier leaves out of Elasticsearch's API.
const (
	typeParsing         = "parsing_exception"
	typeXContent        = "x_content_parse_exception"
	typeIllegalArgument = "illegal_argument_exception"
	typeIndexNotFound   = "index_not_found_exception"
	typeIndexExists     = "resource_already_exists_exception"
	typeInvalidIndex    = "invalid_index_name_exception"
	typeMapperParsing   = "mapper_parsing_exception"
	typeStrictMapping   = "strict_dynamic_mapping_exception"
	typeDocMissing      = "document_missing_exception"
	typeVersionConflict = "version_conflict_engine_exception"
	typeSecurity        = "security_exception"
	typeUnsupported     = "unsupported_operation_exception"
	typeSearchPhase     = "search_phase_execution_exception"
)

// ErrUnsupported marks errors about parts of the Elasticsearch API that pier
// does not implement; errors.Is finds it in every such *Error.
var ErrUnsupported = errors.New("not supported by pier search")

func badRequest(typ, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: typ, Reason: fmt.Sprintf(format, args...)}
}

func parsingError(format string, args ...any) *Error {
	return badRequest(typeParsing, format, args...)
}

func illegalArgument(format string, args ...any) *Error {
	return badRequest(typeIllegalArgument, format, args...)
}

// unsupported names a part of the Elasticsearch API pier leaves out.
func unsupported(format string, args ...any) *Error {
	return &Error{
		Status: http.StatusBadRequest,
		Type:   typeUnsupported,
		Reason: fmt.Sprintf(format, args...) + " is not supported by pier search (see the supported subset in pier's README)",
		Cause:  ErrUnsupported,
	}
}

func indexNotFound(index string) *Error {
	return &Error{Status: http.StatusNotFound, Type: typeIndexNotFound, Reason: "no such index [" + index + "]", Index: index}
}

// esError turns any error into the Error to answer with.
func esError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Type: "exception", Reason: "internal error (see the engine log)", Cause: err}
}

// body is the JSON Elasticsearch sends with an error.
func (e *Error) body() map[string]any {
	cause := map[string]any{"type": e.Type, "reason": e.Reason}
	if e.Index != "" {
		cause["index"] = e.Index
	}
	outer := map[string]any{"root_cause": []any{cause}, "type": e.Type, "reason": e.Reason}
	if e.Index != "" {
		outer["index"] = e.Index
	}
	return map[string]any{"error": outer, "status": e.Status}
}

// itemError is the error object of one bulk item.
func (e *Error) itemError() map[string]any {
	m := map[string]any{"type": e.Type, "reason": e.Reason}
	if e.Index != "" {
		m["index"] = e.Index
	}
	return m
}
