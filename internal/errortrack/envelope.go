package errortrack

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
)

// Envelope is a parsed Sentry envelope:
//
//	envelope = header "\n" *(item-header "\n" payload ["\n"])
//	header   = JSON object (event_id, dsn, sent_at, ...)
//	item-header = JSON object with "type" and optional "length"
//
// An item with "length" has exactly that many payload bytes; without it the
// payload runs to the next newline or the end.
type Envelope struct {
	EventID string
	DSN     string
	Items   []Item
}

// Item is one envelope item.
type Item struct {
	Type    string
	Payload []byte
}

const maxItems = 100

// errBadEnvelope marks an envelope the client must fix (400).
var errBadEnvelope = errors.New("bad envelope")

// parseEnvelope splits an envelope into its items. It never panics and
// always names what is wrong.
func parseEnvelope(data []byte) (*Envelope, error) {
	line, rest, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, fmt.Errorf("%w: empty envelope header", errBadEnvelope)
	}
	var hdr struct {
		EventID string `json:"event_id"`
		DSN     string `json:"dsn"`
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errBadEnvelope, jsonReason(err))
	}
	env := &Envelope{EventID: normalizeID(hdr.EventID), DSN: hdr.DSN}
	for len(rest) > 0 {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		if len(bytes.TrimSpace(line)) == 0 { // blank lines between items
			rest = after
			continue
		}
		if len(env.Items) == maxItems {
			return nil, fmt.Errorf("%w: more than %d items", errBadEnvelope, maxItems)
		}
		var ih struct {
			Type   string          `json:"type"`
			Length json.RawMessage `json:"length"`
		}
		if err := json.Unmarshal(line, &ih); err != nil {
			return nil, fmt.Errorf("%w: item %d header: %v", errBadEnvelope, len(env.Items)+1, jsonReason(err))
		}
		if ih.Type == "" {
			return nil, fmt.Errorf("%w: item %d has no type", errBadEnvelope, len(env.Items)+1)
		}
		var payload []byte
		if l := strings.TrimSpace(string(ih.Length)); l != "" && l != "null" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: item %d: length %s is not a byte count", errBadEnvelope, len(env.Items)+1, clip(l, 32))
			}
			if n > len(after) {
				return nil, fmt.Errorf("%w: item %d (%s) says %d bytes, %d remain", errBadEnvelope, len(env.Items)+1, clip(ih.Type, 32), n, len(after))
			}
			payload, rest = after[:n], after[n:]
			if len(rest) > 0 && rest[0] == '\n' {
				rest = rest[1:]
			}
		} else {
			payload, rest, _ = bytes.Cut(after, []byte("\n"))
		}
		env.Items = append(env.Items, Item{Type: ih.Type, Payload: payload})
	}
	return env, nil
}

// errTooLarge marks a body over the size cap (413).
var errTooLarge = errors.New("body too large")

// readBody reads a request body, decompressing it as Content-Encoding says,
// and fails with errTooLarge past limit bytes (before or after
// decompression).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, the cap is %d", errTooLarge, r.ContentLength, limit)
	}
	var body io.Reader = &capReader{r: r.Body, left: limit, limit: limit}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", errBadEnvelope, err)
		}
		defer zr.Close()
		body = zr
	case "deflate":
		// HTTP's deflate is zlib-wrapped; some clients send raw deflate.
		buf, err := io.ReadAll(body)
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if zr, err := zlib.NewReader(bytes.NewReader(buf)); err == nil {
			body = zr
		} else {
			body = flate.NewReader(bytes.NewReader(buf))
		}
	case "br":
		body = brotli.NewReader(body)
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q is not supported (gzip, deflate, br)", errBadEnvelope, clip(enc, 32))
	}
	data, err := io.ReadAll(&capReader{r: body, left: limit, limit: limit})
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, err
		}
		if enc != "" {
			return nil, fmt.Errorf("%w: %s body: %v", errBadEnvelope, enc, err)
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return data, nil
}

// capReader fails with errTooLarge once more than left bytes come through.
type capReader struct {
	r           io.Reader
	left, limit int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, fmt.Errorf("%w: more than %d bytes", errTooLarge, c.limit)
	}
	return n, err
}

// auth is the DSN key a request presents.
type auth struct {
	Key    string
	Client string
}

// errNoAuth marks a request without usable credentials (401).
var errNoAuth = errors.New("missing authorization")

// requestAuth reads the key from X-Sentry-Auth, Authorization: Sentry ...,
// or the query string (sentry_key), in that order.
func requestAuth(r *http.Request) (auth, error) {
	for _, h := range []string{r.Header.Get("X-Sentry-Auth"), r.Header.Get("Authorization")} {
		rest, ok := cutPrefixFold(strings.TrimSpace(h), "sentry ")
		if !ok {
			continue
		}
		var a auth
		for part := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch strings.TrimSpace(k) {
			case "sentry_key":
				a.Key = strings.TrimSpace(v)
			case "sentry_client":
				a.Client = strings.TrimSpace(v)
			}
		}
		if a.Key == "" {
			return auth{}, fmt.Errorf("%w: the Sentry auth header has no sentry_key", errNoAuth)
		}
		return a, nil
	}
	q := r.URL.Query()
	if k := q.Get("sentry_key"); k != "" {
		return auth{Key: k, Client: q.Get("sentry_client")}, nil
	}
	return auth{}, fmt.Errorf("%w: send X-Sentry-Auth: Sentry sentry_key=<key>, or ?sentry_key=<key>", errNoAuth)
}

// dsnKey extracts the public key of a DSN (an envelope header's "dsn").
func dsnKey(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func newEventID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
