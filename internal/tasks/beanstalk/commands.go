package beanstalk

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"pier/internal/tasks"
)

// handler runs one parsed command and replies through c, or returns an
// error that run turns into beanstalkd's reply. Handlers hold no business
// logic: that is the tasks package's.
type handler func(c *conn, cmd command) error

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"put": cmdPut, "use": cmdUse,
		"reserve": cmdReserve, "reserve-with-timeout": cmdReserve, "reserve-job": cmdReserveJob,
		"delete": cmdDelete, "release": cmdRelease, "bury": cmdBury, "touch": cmdTouch,
		"watch": cmdWatch, "ignore": cmdIgnore,
		"peek": cmdPeek, "peek-ready": cmdPeekState, "peek-delayed": cmdPeekState, "peek-buried": cmdPeekState,
		"kick": cmdKick, "kick-job": cmdKickJob,
		"stats-job": cmdStatsJob, "stats-tube": cmdStatsTube, "stats": cmdStats,
		"list-tubes": cmdListTubes, "list-tube-used": cmdListTubeUsed, "list-tubes-watched": cmdListTubesWatched,
		"pause-tube": cmdPauseTube,
	}
}

func seconds(n uint64) time.Duration {
	if n > math.MaxInt64/uint64(time.Second) {
		n = math.MaxInt64 / uint64(time.Second)
	}
	return time.Duration(n) * time.Second
}

// put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n
// -> INSERTED <id> | JOB_TOO_BIG | EXPECTED_CRLF | DRAINING
func cmdPut(c *conn, cmd command) error {
	if c.s.stopping.Load() {
		return protoError(rDraining)
	}
	ttr := max(cmd.n[2], 1)
	id, err := c.sess.Put(c.ctx, c.used, tasks.NewTask{
		Body: cmd.body, Priority: uint32(cmd.n[0]), Delay: seconds(cmd.n[1]), TTR: seconds(ttr),
	})
	if err != nil {
		return err
	}
	c.replyID("INSERTED ", id)
	return nil
}

// use <tube> -> USING <tube>
func cmdUse(c *conn, cmd command) error {
	q, err := queueOf(cmd.tube)
	if err != nil {
		return err
	}
	if _, err := c.s.opts.Tasks.Stats(c.ctx, c.app, q); err != nil {
		return err
	}
	c.used = q
	c.replyf("USING %s", cmd.tube)
	return nil
}

// reserve | reserve-with-timeout <seconds>
// -> RESERVED <id> <bytes>\r\n<data>\r\n | TIMED_OUT | DEADLINE_SOON
func cmdReserve(c *conn, cmd command) error {
	timeout := time.Duration(-1)
	if cmd.verb == "reserve-with-timeout" {
		timeout = seconds(cmd.n[0])
	}
	c.flush() // a blocking reserve must not hold back earlier replies
	t, err := c.sess.Reserve(c.wait, c.watched, timeout)
	if errors.Is(err, tasks.ErrTimeout) {
		return protoError(rTimedOut)
	}
	if errors.Is(err, tasks.ErrDeadlineSoon) {
		return protoError(rDeadlineSoon)
	}
	if err != nil && c.wait.Err() != nil {
		return errHangUp // the server stops while it waits
	}
	if err != nil {
		return err
	}
	c.replyJob("RESERVED ", t.ID, t.Body)
	return nil
}

// reserve-job <id> -> RESERVED <id> <bytes>\r\n<data>\r\n | NOT_FOUND
func cmdReserveJob(c *conn, cmd command) error {
	t, err := c.sess.ReserveJob(c.ctx, cmd.n[0])
	if err != nil {
		return err
	}
	c.replyData(fmt.Sprintf("RESERVED %d", t.ID), t.Body)
	return nil
}

// delete <id> -> DELETED | NOT_FOUND
func cmdDelete(c *conn, cmd command) error {
	if err := c.sess.Delete(c.ctx, cmd.n[0]); err != nil {
		return err
	}
	c.reply(rDeleted)
	return nil
}

// release <id> <pri> <delay> -> RELEASED | NOT_FOUND
func cmdRelease(c *conn, cmd command) error {
	if err := c.sess.Release(c.ctx, cmd.n[0], uint32(cmd.n[1]), seconds(cmd.n[2])); err != nil {
		return err
	}
	c.reply(rReleased)
	return nil
}

// bury <id> <pri> -> BURIED | NOT_FOUND
func cmdBury(c *conn, cmd command) error {
	if err := c.sess.Bury(c.ctx, cmd.n[0], uint32(cmd.n[1])); err != nil {
		return err
	}
	c.reply(rBuried)
	return nil
}

// touch <id> -> TOUCHED | NOT_FOUND
func cmdTouch(c *conn, cmd command) error {
	if err := c.sess.Touch(c.ctx, cmd.n[0]); err != nil {
		return err
	}
	c.reply(rTouched)
	return nil
}

// watch <tube> -> WATCHING <count>
func cmdWatch(c *conn, cmd command) error {
	q, err := queueOf(cmd.tube)
	if err != nil {
		return err
	}
	if _, err := c.s.opts.Tasks.Stats(c.ctx, c.app, q); err != nil {
		return err
	}
	if !slices.Contains(c.watched, q) {
		c.watched = append(c.watched, q)
	}
	c.replyf("WATCHING %d", len(c.watched))
	return nil
}

// ignore <tube> -> WATCHING <count> | NOT_IGNORED
func cmdIgnore(c *conn, cmd command) error {
	q, err := queueOf(cmd.tube)
	if err != nil {
		return err
	}
	i := slices.Index(c.watched, q)
	if i >= 0 && len(c.watched) == 1 {
		return protoError(rNotIgnored)
	}
	if i >= 0 {
		c.watched = slices.Delete(c.watched, i, i+1)
	}
	c.replyf("WATCHING %d", len(c.watched))
	return nil
}

// peek <id> -> FOUND <id> <bytes>\r\n<data>\r\n | NOT_FOUND
func cmdPeek(c *conn, cmd command) error {
	t, err := c.s.opts.Tasks.Lookup(c.ctx, c.app, cmd.n[0])
	if err != nil {
		return err
	}
	c.replyData(fmt.Sprintf("FOUND %d", t.ID), t.Body)
	return nil
}

// peek-ready | peek-delayed | peek-buried (on the used tube)
// -> FOUND <id> <bytes>\r\n<data>\r\n | NOT_FOUND
func cmdPeekState(c *conn, cmd command) error {
	state := strings.TrimPrefix(cmd.verb, "peek-")
	t, err := c.s.opts.Tasks.Peek(c.ctx, c.app, c.used, state)
	if err != nil {
		return err
	}
	c.replyData(fmt.Sprintf("FOUND %d", t.ID), t.Body)
	return nil
}

// kick <bound> (on the used tube) -> KICKED <count>
func cmdKick(c *conn, cmd command) error {
	n, err := c.s.opts.Tasks.Kick(c.ctx, c.app, c.used, int(min(cmd.n[0], 1<<20)))
	if err != nil {
		return err
	}
	c.replyf("KICKED %d", n)
	return nil
}

// kick-job <id> -> KICKED | NOT_FOUND
func cmdKickJob(c *conn, cmd command) error {
	if err := c.s.opts.Tasks.KickTask(c.ctx, c.app, cmd.n[0]); err != nil {
		return err
	}
	c.reply("KICKED")
	return nil
}

// yaml renders beanstalkd's stats answers: "---" then key: value lines.
func yaml(pairs ...any) []byte {
	var b strings.Builder
	b.WriteString("---\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "%v: %v\n", pairs[i], pairs[i+1])
	}
	return []byte(b.String())
}

func yamlList(items []string) []byte {
	var b strings.Builder
	b.WriteString("---\n")
	for _, it := range items {
		fmt.Fprintf(&b, "- %s\n", it)
	}
	return []byte(b.String())
}

// stats-job <id> -> OK <bytes>\r\n<yaml>\r\n | NOT_FOUND
func cmdStatsJob(c *conn, cmd command) error {
	t, err := c.s.opts.Tasks.Lookup(c.ctx, c.app, cmd.n[0])
	if err != nil {
		return err
	}
	age := int64(time.Since(t.Created).Seconds())
	var delay, left int64
	if t.State == tasks.StateDelayed && !t.ETA.IsZero() {
		delay = int64(time.Duration(t.Delay).Seconds())
		left = int64(time.Until(t.ETA).Seconds())
	}
	if t.State == tasks.StateReserved {
		if d, ok := c.s.opts.Tasks.TimeLeft(t.ID); ok {
			left = int64(d.Seconds())
		}
	}
	reserves := t.Reserves
	c.replyData("OK", yaml(
		"id", t.ID, "tube", t.Queue, "state", t.State, "pri", t.Priority, "age", age,
		"delay", delay, "ttr", int64(time.Duration(t.TTR).Seconds()), "time-left", max(left, 0),
		"file", 0, "reserves", reserves, "timeouts", t.Timeouts, "releases", t.Releases, "buries", t.Buries, "kicks", t.Kicks,
	))
	return nil
}

// exists reports whether the app has queue q.
func (c *conn) exists(q string) (bool, error) {
	names, err := c.s.opts.Tasks.QueueNames(c.ctx, c.app)
	return slices.Contains(names, q), err
}

// stats-tube <tube> -> OK <bytes>\r\n<yaml>\r\n | NOT_FOUND
func cmdStatsTube(c *conn, cmd command) error {
	q, err := queueOf(cmd.tube)
	if err != nil {
		return err
	}
	if ok, err := c.exists(q); err != nil {
		return err
	} else if !ok {
		return tasks.ErrNotFound
	}
	st, err := c.s.opts.Tasks.Stats(c.ctx, c.app, q)
	if err != nil {
		return err
	}
	urgent, err := c.s.opts.Tasks.Urgent(c.ctx, c.app, q)
	if err != nil {
		return err
	}
	using := 0
	if c.used == q {
		using = 1
	}
	watching := 0
	if slices.Contains(c.watched, q) {
		watching = 1
	}
	pause := int64(0)
	if st.Paused {
		pause = int64(time.Duration(st.PauseLeft).Seconds())
	}
	c.replyData("OK", yaml(
		"name", q, "current-jobs-urgent", urgent, "current-jobs-ready", st.Ready,
		"current-jobs-reserved", st.Reserved, "current-jobs-delayed", st.Delayed,
		"current-jobs-buried", st.Buried,
		"total-jobs", st.Ready+st.Reserved+st.Delayed+st.Buried,
		"current-using", using, "current-watching", watching, "current-waiting", st.Waiting,
		"cmd-delete", st.Deletes, "cmd-pause-tube", st.Pauses, "pause", pause, "pause-time-left", pause,
	))
	return nil
}

// stats -> OK <bytes>\r\n<yaml>\r\n
func cmdStats(c *conn, cmd command) error {
	names, err := c.s.opts.Tasks.QueueNames(c.ctx, c.app)
	if err != nil {
		return err
	}
	var sum tasks.QueueStats
	urgent := 0
	for _, n := range names {
		st, err := c.s.opts.Tasks.Stats(c.ctx, c.app, n)
		if err != nil {
			return err
		}
		u, err := c.s.opts.Tasks.Urgent(c.ctx, c.app, n)
		if err != nil {
			return err
		}
		urgent += u
		sum.Ready += st.Ready
		sum.Reserved += st.Reserved
		sum.Delayed += st.Delayed
		sum.Buried += st.Buried
		sum.Waiting += st.Waiting
	}
	c.replyData("OK", yaml(
		"current-jobs-urgent", urgent, "current-jobs-ready", sum.Ready,
		"current-jobs-reserved", sum.Reserved, "current-jobs-delayed", sum.Delayed,
		"current-jobs-buried", sum.Buried, "current-tubes", len(names),
		"current-connections", c.s.connCount(), "current-waiting", sum.Waiting,
		"max-job-size", c.s.opts.Tasks.MaxBody(), "version", `"pier"`,
		"hostname", "pier", "draining", false,
	))
	return nil
}

// list-tubes -> OK <bytes>\r\n<yaml list>\r\n
func cmdListTubes(c *conn, cmd command) error {
	names, err := c.s.opts.Tasks.QueueNames(c.ctx, c.app)
	if err != nil {
		return err
	}
	c.replyData("OK", yamlList(names))
	return nil
}

// list-tube-used -> USING <tube>
func cmdListTubeUsed(c *conn, cmd command) error {
	c.replyf("USING %s", c.used)
	return nil
}

// list-tubes-watched -> OK <bytes>\r\n<yaml list>\r\n
func cmdListTubesWatched(c *conn, cmd command) error {
	c.replyData("OK", yamlList(c.watched))
	return nil
}

// pause-tube <tube> <delay> -> PAUSED | NOT_FOUND
func cmdPauseTube(c *conn, cmd command) error {
	q, err := queueOf(cmd.tube)
	if err != nil {
		return err
	}
	if ok, err := c.exists(q); err != nil {
		return err
	} else if !ok {
		return tasks.ErrNotFound
	}
	if err := c.s.opts.Tasks.Pause(c.ctx, c.app, q, seconds(cmd.n[1])); err != nil {
		return err
	}
	c.reply(rPaused)
	return nil
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
