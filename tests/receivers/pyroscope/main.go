// Command pyroscope-receiver is the Pyroscope end of gprof-bpf's agent tests: it serves the
// push API with Pyroscope's own generated Connect handler (github.com/grafana/pyroscope/api,
// push/v1) and the legacy /ingest?format=pprof endpoint, parses every profile it receives with
// github.com/google/pprof/profile, saves it, and records one JSON line per profile.
//
// Usage: pyroscope-receiver -out DIR
//
// On start it prints {"addr":"127.0.0.1:PORT"} on stdout. DIR/requests.jsonl gets a line per
// received profile; DIR/N.pb.gz is the profile as received; DIR/attempts.jsonl a line per
// request that was answered (status 0: passed to the real handler). Faults, over HTTP:
//
//	POST /control/fail?n=N&status=S[&retry_after=SECONDS][&code=CONNECT_CODE]
//	                          answer the next N requests with status S
//	POST /control/down?seconds=T   drop every connection for T seconds
//	POST /control/delay?ms=D       delay every answer by D ms
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/pprof/profile"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
)

type record struct {
	Received      time.Time         `json:"received"`
	Endpoint      string            `json:"endpoint"`
	Tenant        string            `json:"tenant,omitempty"`
	Authorization string            `json:"authorization,omitempty"`
	Labels        map[string]string `json:"labels"`
	File          string            `json:"file"`
	SampleTypes   []string          `json:"sample_types"`
	PeriodType    string            `json:"period_type"`
	Period        int64             `json:"period"`
	TimeNanos     int64             `json:"time_nanos"`
	DurationNanos int64             `json:"duration_nanos"`
	Samples       int               `json:"samples"`
	// Totals per sample type.
	Totals []int64 `json:"totals"`
	// Query parameters of /ingest.
	Query map[string]string `json:"query,omitempty"`
}

type faults struct {
	mu         sync.Mutex
	failN      int
	status     int
	retryAfter string
	code       string
	downUntil  time.Time
	delay      time.Duration
}

type receiver struct {
	out      string
	mu       sync.Mutex
	n        int
	log      *os.File
	attempts *os.File
	faults   faults
}

// attempt records every request that reached the fault layer, with what it was answered.
func (r *receiver) attempt(path string, status int) {
	line, _ := json.Marshal(map[string]any{"time": time.Now(), "path": path, "status": status})
	r.mu.Lock()
	r.attempts.Write(append(line, '\n'))
	r.mu.Unlock()
}

func (r *receiver) save(endpoint string, h http.Header, labels map[string]string, raw []byte, query map[string]string) error {
	p, err := profile.ParseData(raw)
	if err != nil {
		return fmt.Errorf("not a pprof profile: %w", err)
	}
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("invalid pprof profile: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	file := filepath.Join(r.out, fmt.Sprintf("%d.pb.gz", r.n))
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		return err
	}
	rec := record{
		Received:      time.Now(),
		Endpoint:      endpoint,
		Tenant:        h.Get("X-Scope-OrgID"),
		Authorization: h.Get("Authorization"),
		Labels:        labels,
		File:          file,
		Period:        p.Period,
		TimeNanos:     p.TimeNanos,
		DurationNanos: p.DurationNanos,
		Samples:       len(p.Sample),
		Query:         query,
	}
	if p.PeriodType != nil {
		rec.PeriodType = p.PeriodType.Type + "/" + p.PeriodType.Unit
	}
	rec.Totals = make([]int64, len(p.SampleType))
	for i, st := range p.SampleType {
		rec.SampleTypes = append(rec.SampleTypes, st.Type+"/"+st.Unit)
		for _, s := range p.Sample {
			rec.Totals[i] += s.Value[i]
		}
	}
	line, _ := json.Marshal(rec)
	_, err = r.log.Write(append(line, '\n'))
	return err
}

// Push is the PusherServiceHandler: it decodes what Pyroscope's distributor decodes.
func (r *receiver) Push(ctx context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	for _, s := range req.Msg.Series {
		labels := map[string]string{}
		for _, l := range s.Labels {
			if _, dup := labels[l.Name]; dup {
				return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("duplicate label %q", l.Name))
			}
			labels[l.Name] = l.Value
		}
		if labels["service_name"] == "" {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("service name is not provided"))
		}
		for _, sample := range s.Samples {
			if err := r.save("push", req.Header(), labels, sample.RawProfile, nil); err != nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, err)
			}
		}
	}
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

func (r *receiver) ingest(w http.ResponseWriter, req *http.Request) {
	if req.URL.Query().Get("format") != "pprof" {
		http.Error(w, "only format=pprof", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	q := map[string]string{}
	for k := range req.URL.Query() {
		q[k] = req.URL.Query().Get(k)
	}
	if err := r.save("ingest", req.Header, map[string]string{}, body, q); err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
	}
}

// withFaults applies the injected faults before the real handler.
func (r *receiver) withFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f := &r.faults
		f.mu.Lock()
		down := time.Now().Before(f.downUntil)
		delay := f.delay
		status, retryAfter, code := 0, "", ""
		if f.failN > 0 {
			f.failN--
			status, retryAfter, code = f.status, f.retryAfter, f.code
		}
		f.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		time.Sleep(delay)
		r.attempt(req.URL.Path, status)
		if status != 0 {
			io.Copy(io.Discard, req.Body)
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			msg := map[string]string{"message": fmt.Sprintf("injected %d", status)}
			if code != "" {
				msg["code"] = code
			}
			json.NewEncoder(w).Encode(msg)
			return
		}
		next.ServeHTTP(w, req)
	})
}

func (r *receiver) control(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	f := &r.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	switch req.URL.Path {
	case "/control/fail":
		f.failN, _ = strconv.Atoi(q.Get("n"))
		f.status, _ = strconv.Atoi(q.Get("status"))
		f.retryAfter = q.Get("retry_after")
		f.code = q.Get("code")
	case "/control/down":
		s, _ := strconv.ParseFloat(q.Get("seconds"), 64)
		f.downUntil = time.Now().Add(time.Duration(s * float64(time.Second)))
	case "/control/delay":
		ms, _ := strconv.Atoi(q.Get("ms"))
		f.delay = time.Duration(ms) * time.Millisecond
	default:
		http.NotFound(w, req)
		return
	}
	fmt.Fprintln(w, "ok")
}

func main() {
	out := flag.String("out", "", "directory for received profiles and requests.jsonl")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(*out, "requests.jsonl"))
	if err != nil {
		log.Fatal(err)
	}
	af, err := os.Create(filepath.Join(*out, "attempts.jsonl"))
	if err != nil {
		log.Fatal(err)
	}
	r := &receiver{out: *out, log: lf, attempts: af}
	mux := http.NewServeMux()
	path, handler := pushv1connect.NewPusherServiceHandler(r)
	mux.Handle(path, r.withFaults(handler))
	mux.Handle("/ingest", r.withFaults(http.HandlerFunc(r.ingest)))
	mux.HandleFunc("/control/", r.control)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var ready bytes.Buffer
	json.NewEncoder(&ready).Encode(map[string]string{"addr": ln.Addr().String()})
	os.Stdout.Write(ready.Bytes())
	log.Fatal(http.Serve(ln, mux))
}
