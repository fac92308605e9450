package relayserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cosnim/relays/internal/buildinfo"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/wire"
)

// The operations listener serves, without authentication (bind it to
// loopback):
//
//	/metrics  Prometheus text format, from a registry of this server only
//	/healthz  200 while the process runs
//	/readyz   200 while listening and not draining, else 503
//	/status   JSON: version, uptime, epoch, connections, channels, counters, rates,
//	          memory by part, the ten channels with the most cached bytes
//	          (as of up to a second ago: the view is cached, see TopChannels)
//
// Nothing it serves carries a secret, a key or roster content; channels are
// named only by a 4-byte prefix of their opaque ID (relay.ChannelTop).

const metricsNamespace = "cosnim_relay"

// opsServer is the running operations listener.
type opsServer struct {
	srv  *http.Server
	done chan struct{}
}

func (o *opsServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o.srv.Shutdown(ctx)
	<-o.done
}

// startOps listens on addr and serves the operations endpoints.
func (s *Server) startOps(addr string) (*opsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: metrics listener: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&relayCollector{s: s}, s.fanout,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.Addr() == nil || s.Draining() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	rates := &rateTracker{}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		st, ok := s.status(rates)
		if !ok {
			http.Error(w, "relay not running", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
	o := &opsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	s.mu.Lock()
	s.metricsAddr = ln.Addr()
	s.mu.Unlock()
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener failed", "err", err)
		}
	}()
	s.log.Info("operations listener", "addr", ln.Addr().String())
	return o, nil
}

// Status is the JSON document served at /status.
type Status struct {
	Uptime        string  `json:"uptime"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Epoch         string  `json:"epoch"`
	Listen        string  `json:"listen"`
	TLS           bool    `json:"tls"`
	Draining      bool    `json:"draining"`
	Connections   int     `json:"connections"`
	Channels      int     `json:"channels"`
	Accepted      uint64  `json:"connections_accepted"`
	EntriesIn     uint64  `json:"entries_in"`
	Delivered     uint64  `json:"entries_delivered"`
	BytesIn       uint64  `json:"bytes_in"`
	BytesOut      uint64  `json:"bytes_out"`
	// Rates are per second, over the time since the previous /status
	// request (or since start, for the first).
	EntriesInRate float64 `json:"entries_in_per_second"`
	DeliveredRate float64 `json:"entries_delivered_per_second"`
	BytesInRate   float64 `json:"bytes_in_per_second"`
	BytesOutRate  float64 `json:"bytes_out_per_second"`

	// Version names the build of the relay's binary.
	Version buildinfo.Info `json:"version"`
	// Memory is the relay's accounting by part, its budget, and the
	// process's resident set for comparison.
	Memory MemoryStatus `json:"memory"`
	// QueueFull and SyncsDeferred count connections closed over their
	// send queue and sync messages held until a queue drained.
	QueueFull     uint64 `json:"queue_full"`
	SyncsDeferred uint64 `json:"syncs_deferred"`
	// SendQueue is the limit of one connection's send queue (send_queue).
	SendQueue int64 `json:"send_queue"`
	// PendingMerged, PendingDropped and Resyncs count entries held for
	// slow members, held entries dropped past the cap, and members told to
	// sync again.
	PendingMerged  uint64 `json:"pending_merged"`
	PendingDropped uint64 `json:"pending_dropped"`
	Resyncs        uint64 `json:"resyncs"`
	// ShedConns counts connections closed as the costliest when what
	// eviction cannot free passed the memory budget; ChannelsForgotten,
	// channels dropped (idle, or without members under memory pressure).
	ShedConns         uint64 `json:"shed_connections"`
	ChannelsForgotten uint64 `json:"channels_forgotten"`
	// TopChannels are the channels with the most cached bytes, at most
	// relay.MaxTopChannels.
	TopChannels []relay.ChannelTop `json:"top_channels"`
	// Backbone is the NATS link to the pool's other relays; absent
	// without one.
	Backbone *BackboneStatus `json:"backbone,omitempty"`
}

// MemoryStatus is /status's memory object.
type MemoryStatus struct {
	relay.MemoryUsage
	Total  int64 `json:"total"`
	Budget int64 `json:"budget"`
	// RSS is the process's resident set in bytes (0 where unknown).
	RSS int64 `json:"rss"`
}

// rateTracker remembers the previous /status sample.
type rateTracker struct {
	mu   sync.Mutex // guards the following
	at   time.Time
	prev relay.Stats
}

func (s *Server) status(rt *rateTracker) (Status, bool) {
	st, conns, chans, ok := s.Stats()
	if !ok {
		return Status{}, false
	}
	var mem relay.MemoryUsage
	var top []relay.ChannelTop
	now := time.Now()
	s.do(func(r *relay.Relay) { mem, top = r.MemoryUsage(), r.TopChannels(relay.MaxTopChannels, now) })
	up := now.Sub(s.started)
	out := Status{
		Version:           buildinfo.Get(),
		Uptime:            up.Round(time.Second).String(),
		UptimeSeconds:     up.Seconds(),
		Epoch:             fmt.Sprintf("%016x", s.core.Epoch()),
		TLS:               s.cfg.TLS != nil,
		Draining:          s.Draining(),
		Connections:       conns,
		Channels:          chans,
		Accepted:          st.Conns,
		EntriesIn:         st.EntriesIn,
		Delivered:         st.Delivered,
		BytesIn:           st.BytesIn,
		BytesOut:          st.BytesOut,
		QueueFull:         st.QueueFull,
		SyncsDeferred:     st.SyncsDeferred,
		SendQueue:         int64(s.cfg.Relay.WithDefaults().SendQueue),
		PendingMerged:     st.PendingMerged,
		PendingDropped:    st.PendingDropped,
		Resyncs:           st.Resyncs,
		ShedConns:         st.ShedConns,
		ChannelsForgotten: st.ChannelsForgotten,
		TopChannels:       top,
		Memory: MemoryStatus{MemoryUsage: mem, Total: mem.Total(),
			Budget: s.cfg.Relay.WithDefaults().MemoryBudget, RSS: residentBytes()},
	}
	if a := s.Addr(); a != nil {
		out.Listen = a.String()
	}
	if s.bb != nil {
		out.Backbone = s.bb.status(st)
	}
	rt.mu.Lock()
	since, prev := rt.at, rt.prev
	if since.IsZero() {
		since = s.started
	}
	rt.at, rt.prev = now, st
	rt.mu.Unlock()
	if secs := now.Sub(since).Seconds(); secs > 0 {
		rate := func(a, b uint64) float64 { return float64(a-b) / secs }
		out.EntriesInRate = rate(st.EntriesIn, prev.EntriesIn)
		out.DeliveredRate = rate(st.Delivered, prev.Delivered)
		out.BytesInRate = rate(st.BytesIn, prev.BytesIn)
		out.BytesOutRate = rate(st.BytesOut, prev.BytesOut)
	}
	return out, true
}

// relayCollector reads the core's Stats in its event context at each
// scrape, so the core keeps plain counters and no locks.
type relayCollector struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

var (
	descUp            = desc("up", "1 while the relay serves, 0 while it drains.")
	descInfo          = desc("info", "Always 1; the epoch label changes at each start.", "epoch")
	descUptime        = desc("uptime_seconds", "Seconds since the relay started listening.")
	descConns         = desc("connections", "Live client connections.")
	descChannels      = desc("channels", "Channels the relay holds.")
	descParked        = desc("transport_parked_connections", "Idle connections parked: no reader goroutine, the socket watched by epoll.")
	descAccepted      = desc("connections_accepted_total", "Connections accepted.")
	descRefused       = desc("connections_refused_total", "Connections refused because the relay was full or draining.")
	descChanCreated   = desc("channels_created_total", "Channels created.")
	descFrames        = desc("frames_total", "Frames by direction and type.", "direction", "type")
	descBytes         = desc("bytes_total", "Bytes by direction.", "direction")
	descFrameBytes    = desc("frame_bytes_total", "Bytes of frames by direction and type, headers included.", "direction", "type")
	descRateLimited   = desc("rate_limited_total", "Connections closed over their frame or byte rate.")
	descShed          = desc("shed_total", "Connections and channels refused over the memory budget.")
	descForgotten     = desc("channels_forgotten_total", "Channels dropped after channel_idle_timeout without members.")
	descUnknown       = desc("unknown_frames_total", "Frames of unknown type skipped.")
	descProtoErr      = desc("protocol_errors_total", "Connections closed for a protocol error.")
	descJoinsDenied   = desc("joins_denied_total", "Joins refused for a bad channel proof or a limit.")
	descDeniedClosed  = desc("joins_denied_closed_total", "Connections closed at max_denied_joins bad channel proofs.")
	descPreHandshake  = desc("tls_pre_handshake_connections", "TLS connections waiting for their ClientHello (max_pre_handshake).")
	descEvictedSilent = desc("tls_pre_handshake_evicted_total", "TLS connections closed as the oldest waiting for a ClientHello when max_pre_handshake were.")
	descBadEntries    = desc("bad_entries_total", "Entries refused as empty or too large.")
	descStored        = desc("entries_stored_total", "New entries stored in channel caches.")
	descDuplicates    = desc("entries_duplicate_total", "Entries received that the cache already held.")
	descDelivered     = desc("entries_delivered_total", "Entries sent to members by fan-out.")
	descEvicted       = desc("entries_evicted_total", "Entries dropped from full channel caches.")
	descPendMerged    = desc("pending_merged_total", "Entries held and merged for slow members.")
	descPendDropped   = desc("pending_dropped_total", "Held entries dropped past the cap (the member is told to resync).")
	descResyncs       = desc("resyncs_total", "Members told to sync again.")
	descSyncRounds    = desc("sync_rounds_total", "Sync messages answered.")
	descErrorsSent    = desc("errors_sent_total", "Error frames sent, by code.", "code")
	descHandshakeFail = desc("handshake_failures_total", "Refused handshakes by reason (protocol handshake codes and TLS reasons).", "reason")
	descMemory        = desc("memory_bytes", "Memory the relay accounts for (caches, pending entries, queues, buffers), as its budget counts it.")
	descMemoryBudget  = desc("memory_budget_bytes", "The memory budget (limits.memory_budget); past it the relay sheds load.")
	// Not under the relay namespace: the usual name for what a binary was
	// built from, so dashboards can join it with any cosnim process.
	descBuildInfo = prometheus.NewDesc("cosnim_build_info", "Always 1; labels name the build.",
		[]string{"version", "revision", "go_version"}, nil)
)

func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descInfo, descUptime, descConns, descChannels, descParked,
		descAccepted, descRefused, descChanCreated, descFrames, descBytes, descUnknown, descProtoErr,
		descJoinsDenied, descBadEntries, descStored, descDuplicates, descDelivered, descEvicted,
		descPendMerged, descPendDropped, descResyncs, descSyncRounds, descErrorsSent, descHandshakeFail,
		descFrameBytes, descRateLimited, descShed, descForgotten, descMemory, descMemoryBudget, descBuildInfo,
		descDeniedClosed, descPreHandshake, descEvictedSilent} {
		ch <- d
	}
	for _, d := range backboneDescs {
		ch <- d
	}
}

func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st, conns, chans, ok := s.Stats()
	up := 0.0
	if ok && !s.Draining() {
		up = 1
	}
	gauge, counter := gaugeTo(ch), counterTo(ch)
	gauge(descUp, up)
	if s.bb != nil {
		s.bb.collect(ch, st)
	}
	bi := buildinfo.Get()
	gauge(descBuildInfo, 1, bi.Version, bi.Revision, bi.GoVersion)
	var mem int64
	if s.do(func(r *relay.Relay) { mem = r.Memory() }) {
		gauge(descMemory, float64(mem))
	}
	gauge(descMemoryBudget, float64(s.cfg.Relay.WithDefaults().MemoryBudget))
	gauge(descInfo, 1, fmt.Sprintf("%016x", s.core.Epoch()))
	if !s.started.IsZero() {
		gauge(descUptime, time.Since(s.started).Seconds())
	}
	gauge(descConns, float64(conns))
	gauge(descParked, float64(s.ParkStats().Parked))
	gauge(descChannels, float64(chans))
	counter(descAccepted, st.Conns)
	counter(descRefused, st.Refused)
	counter(descChanCreated, st.Channels)
	for t := range 256 {
		typ := wire.Type(t)
		if st.FramesIn[t] > 0 || wire.Known(typ) {
			counter(descFrames, st.FramesIn[t], "in", frameLabel(typ))
		}
		if st.FramesOut[t] > 0 || wire.Known(typ) {
			counter(descFrames, st.FramesOut[t], "out", frameLabel(typ))
		}
		if st.FrameBytesIn[t] > 0 || wire.Known(typ) {
			counter(descFrameBytes, st.FrameBytesIn[t], "in", frameLabel(typ))
		}
		if st.FrameBytesOut[t] > 0 || wire.Known(typ) {
			counter(descFrameBytes, st.FrameBytesOut[t], "out", frameLabel(typ))
		}
	}
	counter(descBytes, st.BytesIn, "in")
	counter(descBytes, st.BytesOut, "out")
	counter(descUnknown, st.UnknownFrames)
	counter(descProtoErr, st.ProtocolErrors)
	counter(descJoinsDenied, st.JoinsDenied)
	counter(descDeniedClosed, st.DeniedClosed)
	if g := s.tlsGate(); g != nil {
		gs := g.stats()
		gauge(descPreHandshake, float64(gs.Waiting))
		counter(descEvictedSilent, gs.Evictions)
	}
	counter(descBadEntries, st.BadEntries)
	counter(descStored, st.EntriesIn)
	counter(descDuplicates, st.Duplicates)
	counter(descDelivered, st.Delivered)
	counter(descEvicted, st.Evicted)
	counter(descPendMerged, st.PendingMerged)
	counter(descPendDropped, st.PendingDropped)
	counter(descResyncs, st.Resyncs)
	counter(descSyncRounds, st.SyncRounds)
	counter(descRateLimited, st.RateLimited)
	counter(descShed, st.Shed)
	counter(descForgotten, st.ChannelsForgotten)
	for _, code := range sortedCodes(st.ErrorsSent) {
		counter(descErrorsSent, st.ErrorsSent[code], codeLabel(code))
	}
	fails := make(map[string]uint64)
	for code, n := range st.HandshakeFailures { // sorted: summed into a map
		fails[codeLabel(code)] += n
	}
	for reason, n := range s.tlsFail.snapshot() { // sorted: summed into a map
		fails["tls_"+reason] += n
	}
	reasons := make([]string, 0, len(fails))
	for r := range fails { // sorted: below
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		counter(descHandshakeFail, fails[r], r)
	}
}

func frameLabel(t wire.Type) string {
	if wire.Known(t) {
		return strings.ToLower(t.String())
	}
	return fmt.Sprintf("0x%02x", uint8(t))
}

func codeLabel(c wire.Code) string { return strings.ReplaceAll(c.String(), " ", "_") }

func sortedCodes(m map[wire.Code]uint64) []wire.Code {
	codes := make([]wire.Code, 0, len(m))
	for c := range m { // sorted: below
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	return codes
}

// gaugeTo and counterTo send samples to a scrape.
func gaugeTo(ch chan<- prometheus.Metric) func(d *prometheus.Desc, v float64, labels ...string) {
	return func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
}

func counterTo(ch chan<- prometheus.Metric) func(d *prometheus.Desc, v uint64, labels ...string) {
	return func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
}
