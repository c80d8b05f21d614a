// Command otlp-receiver is the OpenTelemetry end of gprof-bpf's agent tests: the
// OpenTelemetry Collector's own OTLP receiver (go.opentelemetry.io/collector/receiver/
// otlpreceiver, gRPC and HTTP/protobuf, profiles signal) embedded in a small program whose
// profiles consumer records what the receiver decoded, with the collector's own pdata types.
//
// Usage: otlp-receiver -out DIR
//
// On start it prints {"addr":"127.0.0.1:PORT","grpc":"127.0.0.1:PORT"} (HTTP and gRPC) on
// stdout. DIR/requests.jsonl gets one JSON line per profile received.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/xconsumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/collector/receiver/xreceiver"
)

type record struct {
	Received   time.Time         `json:"received"`
	Resource   map[string]string `json:"resource"`
	Scope      string            `json:"scope"`
	SampleType string            `json:"sample_type"`
	PeriodType string            `json:"period_type"`
	Period     int64             `json:"period"`
	TimeNanos  uint64            `json:"time_nanos"`
	Duration   uint64            `json:"duration_nanos"`
	Samples    int               `json:"samples"`
	Total      int64             `json:"total"`
	// Function names (inlined ones included) in the samples' stacks.
	Functions []string `json:"functions"`
	// Locations with more than one line: inlined frames.
	InlinedLocations int `json:"inlined_locations"`
	// Functions with a start line.
	StartLines int `json:"start_lines"`
	// Sample attribute keys seen.
	SampleAttributes []string `json:"sample_attributes"`
	// Build ids of the mappings.
	BuildIDs []string `json:"build_ids"`
}

// freePort picks a loopback port (the receiver takes an endpoint, not a listener).
func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func main() {
	out := flag.String("out", "", "directory for requests.jsonl")
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
	var mu sync.Mutex
	consume := func(_ context.Context, pd pprofile.Profiles) error {
		dict := pd.Dictionary()
		str := func(i int32) string {
			if int(i) < dict.StringTable().Len() {
				return dict.StringTable().At(int(i))
			}
			return fmt.Sprintf("<bad string index %d>", i)
		}
		mu.Lock()
		defer mu.Unlock()
		rps := pd.ResourceProfiles()
		for i := 0; i < rps.Len(); i++ {
			rp := rps.At(i)
			res := map[string]string{}
			rp.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
				res[k] = v.AsString()
				return true
			})
			sps := rp.ScopeProfiles()
			for j := 0; j < sps.Len(); j++ {
				sp := sps.At(j)
				ps := sp.Profiles()
				for k := 0; k < ps.Len(); k++ {
					p := ps.At(k)
					r := record{
						Received:   time.Now(),
						Resource:   res,
						Scope:      sp.Scope().Name(),
						SampleType: str(p.SampleType().TypeStrindex()) + "/" + str(p.SampleType().UnitStrindex()),
						PeriodType: str(p.PeriodType().TypeStrindex()) + "/" + str(p.PeriodType().UnitStrindex()),
						Period:     p.Period(),
						TimeNanos:  uint64(p.Time()),
						Duration:   p.DurationNano(),
						Samples:    p.Samples().Len(),
					}
					funcs, attrs, builds := map[string]bool{}, map[string]bool{}, map[string]bool{}
					seenLoc := map[int32]bool{}
					for s := 0; s < p.Samples().Len(); s++ {
						sample := p.Samples().At(s)
						for v := 0; v < sample.Values().Len(); v++ {
							r.Total += sample.Values().At(v)
						}
						for a := 0; a < sample.AttributeIndices().Len(); a++ {
							kv := dict.AttributeTable().At(int(sample.AttributeIndices().At(a)))
							attrs[str(kv.KeyStrindex())] = true
						}
						stack := dict.StackTable().At(int(sample.StackIndex()))
						for l := 0; l < stack.LocationIndices().Len(); l++ {
							li := stack.LocationIndices().At(l)
							loc := dict.LocationTable().At(int(li))
							if !seenLoc[li] {
								seenLoc[li] = true
								if loc.Lines().Len() > 1 {
									r.InlinedLocations++
								}
								m := dict.MappingTable().At(int(loc.MappingIndex()))
								for a := 0; a < m.AttributeIndices().Len(); a++ {
									kv := dict.AttributeTable().At(int(m.AttributeIndices().At(a)))
									builds[kv.Value().AsString()] = true
								}
							}
							for n := 0; n < loc.Lines().Len(); n++ {
								f := dict.FunctionTable().At(int(loc.Lines().At(n).FunctionIndex()))
								name := str(f.NameStrindex())
								if !funcs[name] && f.StartLine() > 0 {
									r.StartLines++
								}
								funcs[name] = true
							}
						}
					}
					for f := range funcs {
						r.Functions = append(r.Functions, f)
					}
					for a := range attrs {
						r.SampleAttributes = append(r.SampleAttributes, a)
					}
					for b := range builds {
						r.BuildIDs = append(r.BuildIDs, b)
					}
					line, _ := json.Marshal(r)
					lf.Write(append(line, '\n'))
				}
			}
		}
		return nil
	}
	next, err := xconsumer.NewProfiles(consume)
	if err != nil {
		log.Fatal(err)
	}
	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)
	httpAddr, grpcAddr := freePort(), freePort()
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = httpAddr
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = grpcAddr
	settings := receivertest.NewNopSettings(factory.Type())
	r, err := factory.(xreceiver.Factory).CreateProfiles(context.Background(), settings, cfg, next)
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		log.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]string{"addr": httpAddr, "grpc": grpcAddr})
	select {}
}
