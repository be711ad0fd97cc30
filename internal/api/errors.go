package api

import "errors"

// Sentinels the engine wraps so the server can answer with the right status.
var (
	ErrNotFound   = errors.New("not found")   // 404
	ErrBadRequest = errors.New("bad request") // 400
	ErrConflict   = errors.New("conflict")    // 409
)
