package main

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/checkin-ledger/ledger/eventstore"
	ledgerhttp "github.com/checkin-ledger/ledger/http"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/reactions"
)

// metrics is the service's Prometheus instrumentation, on a registry of its
// own (never the global default): it implements each package's metrics
// hook, and collects the projections' position and lag when scraped.
type metrics struct {
	reg *prometheus.Registry

	writes       *prometheus.CounterVec
	writeEvents  *prometheus.CounterVec
	writeSeconds *prometheus.HistogramVec
	packEvents   prometheus.Histogram
	passes       *prometheus.CounterVec
	requests     *prometheus.CounterVec
	reqSeconds   *prometheus.HistogramVec
	problems     *prometheus.CounterVec
	reactFailed  *prometheus.CounterVec
	reactPoison  *prometheus.CounterVec
}

var (
	_ eventstore.Metrics = (*metrics)(nil)
	_ ledger.Metrics     = (*metrics)(nil)
	_ reactions.Metrics  = (*metrics)(nil)
	_ ledgerhttp.Metrics = (*metrics)(nil)
)

// newMetrics registers the service's metrics and Go's runtime and process
// collectors on reg.
func newMetrics(reg *prometheus.Registry) *metrics {
	counters := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg: reg,
		writes: counters("ledger_appends_total",
			"Writes to the log: kind append (versioned, one aggregate) or record (group-committed), result ok or error.", "kind", "result"),
		writeEvents: counters("ledger_appended_events_total",
			"Events handed to the log's writes, by kind.", "kind"),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ledger_append_duration_seconds",
			Help:    "How long a write to the log took until acknowledged (fsynced), by kind.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"kind"}),
		packEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ledger_group_commit_pack_events",
			Help:    "Events in each group-committed pack (one message, one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		passes: counters("ledger_passes_recorded_total",
			"New passes stored, by method (self_scan, staff_scan, manual) and decision (pass, deny).", "method", "decision"),
		requests: counters("ledger_http_requests_total",
			"HTTP requests answered, by method, route pattern and status code.", "method", "route", "code"),
		reqSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ledger_http_request_duration_seconds",
			Help:    "How long HTTP requests took, by method and route pattern (a stream: how long it was open).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		problems: counters("ledger_http_problems_total",
			"problem+json answers, by problem type.", "type"),
		reactFailed: counters("ledger_reaction_failures_total",
			"Failed reaction attempts, each retried until the message is poisoned, by reaction.", "reaction"),
		reactPoison: counters("ledger_reaction_poisoned_total",
			"Messages a reaction set aside in the poison queue, by reaction.", "reaction"),
	}
	reg.MustRegister(m.writes, m.writeEvents, m.writeSeconds, m.packEvents, m.passes, m.requests, m.reqSeconds,
		m.problems, m.reactFailed, m.reactPoison,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every reaction's counters from the start, zero until something fails:
	// an alert on them needs the series to exist.
	for _, r := range reactions.Names {
		m.reactFailed.WithLabelValues(r)
		m.reactPoison.WithLabelValues(r)
	}
	return m
}

// Appended implements eventstore.Metrics.
func (m *metrics) Appended(kind string, events int, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.writes.WithLabelValues(kind, result).Inc()
	m.writeEvents.WithLabelValues(kind).Add(float64(events))
	m.writeSeconds.WithLabelValues(kind).Observe(took.Seconds())
}

// PackSent implements eventstore.Metrics.
func (m *metrics) PackSent(events int) { m.packEvents.Observe(float64(events)) }

// PassRecorded implements ledger.Metrics.
func (m *metrics) PassRecorded(method, decision string) {
	m.passes.WithLabelValues(method, decision).Inc()
}

// Request implements ledgerhttp.Metrics.
func (m *metrics) Request(method, route string, status int, took time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.reqSeconds.WithLabelValues(method, route).Observe(took.Seconds())
}

// Problem implements ledgerhttp.Metrics.
func (m *metrics) Problem(typ string) { m.problems.WithLabelValues(typ).Inc() }

// Failed implements reactions.Metrics.
func (m *metrics) Failed(reaction string) { m.reactFailed.WithLabelValues(reaction).Inc() }

// Poisoned implements reactions.Metrics.
func (m *metrics) Poisoned(reaction string) { m.reactPoison.WithLabelValues(reaction).Inc() }

// watchProjections collects each projector's position and lag when scraped.
func (m *metrics) watchProjections(ps ...*projections.Projector) {
	m.reg.MustRegister(projectionCollector{ps: ps})
}

// Handler serves the registry's metrics.
func (m *metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// projectionCollector reads the projectors' status at each scrape.
type projectionCollector struct{ ps []*projections.Projector }

var (
	projPosition = prometheus.NewDesc("ledger_projection_position",
		"The log position the projection has applied.", []string{"projection"}, nil)
	projLagEvents = prometheus.NewDesc("ledger_projection_lag_events",
		"Events in the log the projection has not applied yet (an upper bound: positions are not dense).", []string{"projection"}, nil)
	projLagSeconds = prometheus.NewDesc("ledger_projection_lag_seconds",
		"How far behind the log the projection is: now − the recorded time of its last applied event, while it lags; 0 when caught up.", []string{"projection"}, nil)
)

// Describe implements prometheus.Collector.
func (c projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- projPosition
	ch <- projLagEvents
	ch <- projLagSeconds
}

// Collect implements prometheus.Collector.
func (c projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, p := range c.ps {
		st, err := p.Status(ctx)
		if err != nil {
			continue // the scrape shows it as missing
		}
		ch <- prometheus.MustNewConstMetric(projPosition, prometheus.GaugeValue, float64(st.Position), st.Name)
		ch <- prometheus.MustNewConstMetric(projLagEvents, prometheus.GaugeValue, float64(st.LagEvents), st.Name)
		ch <- prometheus.MustNewConstMetric(projLagSeconds, prometheus.GaugeValue, st.LagSeconds, st.Name)
	}
}
