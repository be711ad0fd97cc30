package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// pushLatency enqueues rate tasks/s for dur through the API on queue of
// app (examples/tasks-python), each body holding its enqueue time, then
// reads what the app received (GET /seen through the gateway) and returns
// the enqueue-to-handler latencies' p50 and p99.
func pushLatency(apiURL, token, gatewayURL, domain, app, queue string, rate int, dur time.Duration) (p50, p99 time.Duration, n int, err error) {
	client := &http.Client{Timeout: 30 * time.Second}
	total := int(float64(rate) * dur.Seconds())
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sem := make(chan struct{}, 64)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	for i := 0; i < total; i++ {
		<-tick.C
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			body, _ := json.Marshal(map[string]string{"body": "lat " + strconv.FormatInt(time.Now().UnixNano(), 10)})
			req, _ := http.NewRequest("POST", apiURL+"/v1/apps/"+app+"/tasks/"+queue, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 201 {
					err = fmt.Errorf("enqueue: %s", resp.Status)
				}
			}
			if err != nil {
				mu.Lock()
				ferr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ferr != nil {
		return 0, 0, 0, ferr
	}
	var lat []time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", gatewayURL+"/seen", nil)
		req.Host = app + "." + domain
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, 0, err
		}
		var seen struct {
			Seen []struct {
				Body string  `json:"body"`
				Time float64 `json:"time"`
			} `json:"seen"`
		}
		err = json.NewDecoder(resp.Body).Decode(&seen)
		resp.Body.Close()
		if err != nil {
			return 0, 0, 0, err
		}
		lat = lat[:0]
		for _, s := range seen.Seen {
			var sent int64
			if _, err := fmt.Sscanf(s.Body, "lat %d", &sent); err == nil {
				lat = append(lat, time.Duration(int64(s.Time*1e9)-sent))
			}
		}
		if len(lat) >= total {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(lat) < total {
		return 0, 0, len(lat), fmt.Errorf("only %d of %d tasks reached the app", len(lat), total)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat), nil
}
