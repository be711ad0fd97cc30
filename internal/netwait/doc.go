// Package netwait waits for a TCP connection to have something to read
// without reading it first.
//
// A Read on a socket in Go's network poller starts with read(2) and parks
// only when that finds nothing (EAGAIN). A server whose peer works in
// lockstep — an HTTP client waiting for its response, a beanstalkd client
// for its reply, an app for the gateway's next request — knows when the
// socket must be empty, and there that first read(2) always fails: one
// system call of the few a request costs, where nginx or beanstalkd wait
// for epoll's edge and read once. The runtime's poller has the wait on
// its own (internal/poll.runtime_pollWait), which parks until the
// socket's next edge, or returns at once if one came since the last read:
// the Read that follows then finds the data at its first read(2).
//
// On Linux (amd64, arm64) only; elsewhere New returns nil and reads start
// with read(2) as usual.
package netwait
