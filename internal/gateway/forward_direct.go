package gateway

import (
	"io"
	"net/http"
	"strings"
)

// The forwarder's direct answer: a response from an app that Front's own
// writer would pass through unchanged is written to the client's
// connection from the parsed response head, without the header map and the
// writer's framing work in between. What goes on the wire is what the
// writer would send (TestDirectSame compares both ways): the status line,
// the app's end-to-end fields, the fields the gateway set (X-Request-Id,
// X-Cache), Date when the app sent none, Connection: close when the client
// asked for it, then the body as it comes.

// xCacheMiss is the X-Cache value of a response the cache let through
// (see passCache); httpcache's own MISS.
var xCacheMiss = []string{CacheMiss}

// writeDirect writes resp, with its body from uc, straight to the client
// when w is Front's writer (possibly behind the Observe hook's) and the
// response has a shape that writer sends unchanged: a final status, one
// Content-Length at most and a body of that length (none for HEAD, 204,
// 304), a Content-Type when there is a body to sniff one for, no trailers,
// and gateway fields that neither repeat the app's nor frame the response.
// It reports false, having written nothing, for anything else. xcache
// adds X-Cache: MISS, in place of the app's own, as the cache does to a
// response it passes on. err is a failure while the body was being
// copied, as copyBody reports it.
func writeDirect(w http.ResponseWriter, resp *respHead, uc *upConn, xcache bool) (direct bool, err error) {
	if resp.status < 200 || resp.chunked || resp.length < 0 || len(resp.announce) > 0 {
		return false, nil
	}
	ow, _ := w.(*observedWriter)
	if ow != nil {
		w = ow.ResponseWriter
	}
	fw, _ := w.(*frontWriter)
	if fw == nil || fw.wroteHeader || fw.err != nil {
		return false, nil
	}
	bodyOK := resp.status != http.StatusNoContent && resp.status != http.StatusNotModified
	cls, date, ctype := 0, false, false
	for i := range resp.fields {
		switch resp.fields[i].key {
		case "Content-Length":
			cls++
		case "Date":
			date = true
		case "Content-Type":
			ctype = true
		case "X-Cache":
			if xcache {
				return false, nil // the app's own, replaced by the cache's
			}
		}
	}
	if cls > 1 || bodyOK && !resp.noBody && (cls == 0 || resp.length > 0 && !ctype) {
		return false, nil // the writer would frame or sniff it itself
	}
	// The gateway's fields: most often the request id alone, which the
	// parser keeps off resp.fields, checked and written without ranging
	// over the map.
	id, idOnly := fw.header["X-Request-Id"]
	idOnly = idOnly && len(fw.header) == 1
	if !idOnly {
		for k := range fw.header {
			switch k {
			case "Content-Length", "Transfer-Encoding", "Connection", "Trailer", "Date", "Content-Type", "X-Cache":
				return false, nil
			}
			for i := range resp.fields {
				if resp.fields[i].key == k {
					return false, nil // the writer would join their values
				}
			}
		}
	}

	// As frontWriter.WriteHeader and commit would.
	fw.wroteHeader, fw.committed, fw.status, fw.bodyOK = true, true, resp.status, bodyOK
	if cls == 1 && !resp.noBody {
		fw.cl = resp.length
	} else if cls == 1 {
		for i := range resp.fields {
			if f := &resp.fields[i]; f.key == "Content-Length" {
				fw.cl, _ = parseLen(f.value)
			}
		}
	}
	if ow != nil && ow.status == 0 {
		ow.status = resp.status
	}
	// The head is appended to the write buffer's free space and written
	// at once, not piece by piece; the values were checked by the parser
	// (no CR or LF in them), so they need none of writeValue's care.
	bw := fw.fc.writer()
	b := appendStatusLine(bw.AvailableBuffer(), resp.status)
	for i := range resp.fields {
		f := &resp.fields[i]
		b = append(b, f.key...)
		b = append(b, ": "...)
		b = append(b, trimSpace(f.value)...)
		b = append(b, "\r\n"...)
	}
	if idOnly {
		for _, v := range id {
			b = append(b, "X-Request-Id: "...)
			b = appendValue(b, trimSpace(v))
			b = append(b, "\r\n"...)
		}
	} else {
		bw.Write(b)
		writeHeaderMap(bw, fw.header, false)
		b = bw.AvailableBuffer()
	}
	if xcache {
		b = append(b, "X-Cache: MISS\r\n"...)
		fw.header["X-Cache"] = xCacheMiss // what the Observe hook reads
	}
	if !date {
		b = append(b, "Date: "...)
		b = append(b, httpDate()...)
		b = append(b, "\r\n"...)
	}
	if fw.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if _, fw.err = bw.Write(b); fw.err != nil {
		return true, fw.err
	}

	left := resp.length
	if resp.noBody || fw.req.Method == http.MethodHead {
		left = 0
	}
	// The body: what the read buffer holds goes from there, the rest
	// through a pooled buffer, taken only if needed.
	var bp *[32 << 10]byte
	defer func() {
		if bp != nil {
			upBufs.Put(bp)
		}
	}()
	for left > 0 {
		if k := uc.br.Buffered(); k > 0 {
			p, _ := uc.br.Peek(int(min(int64(k), left)))
			if _, fw.err = bw.Write(p); fw.err != nil {
				return true, fw.err
			}
			uc.br.Discard(len(p))
			left -= int64(len(p))
			fw.written += int64(len(p))
			if ow != nil {
				ow.bytes += int64(len(p))
			}
			continue
		}
		if bp == nil {
			bp = upBufs.Get().(*[32 << 10]byte)
		}
		p := bp[:]
		if int64(len(p)) > left {
			p = p[:left]
		}
		n, rerr := uc.br.Read(p)
		if n > 0 {
			left -= int64(n)
			if _, fw.err = bw.Write(p[:n]); fw.err != nil {
				return true, fw.err
			}
			fw.written += int64(n)
			if ow != nil {
				ow.bytes += int64(n)
			}
		}
		if rerr != nil && left > 0 {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return true, rerr
		}
	}
	return true, nil
}

// trimSpace is strings.TrimSpace, which the writer applies to every value,
// without its work on values with nothing to trim.
func trimSpace(v string) string {
	if v == "" {
		return v
	}
	if c, d := v[0], v[len(v)-1]; c > ' ' && c < 0x80 && d > ' ' && d < 0x80 {
		return v
	}
	return strings.TrimSpace(v)
}
