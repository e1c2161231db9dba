package metrics

import (
	"encoding/json"
	"math"
	"time"
)

// The ingestion API's envelope for a metric item (Monitor.Exporters v2.1: TelemetryEnvelope with a
// MetricsData payload). Only the first data point of an item is stored, so each item carries one.
type envelope struct {
	Name string            `json:"name"`
	Time string            `json:"time"`
	IKey string            `json:"iKey"`
	Tags map[string]string `json:"tags,omitempty"`
	Data envelopeData      `json:"data"`
}

type envelopeData struct {
	BaseType string     `json:"baseType"`
	BaseData metricData `json:"baseData"`
}

type metricData struct {
	Ver        int               `json:"ver"`
	Metrics    []dataPoint       `json:"metrics"`
	Properties map[string]string `json:"properties,omitempty"`
}

type dataPoint struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Count  int64   `json:"count"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	StdDev float64 `json:"stdDev"`
}

const (
	envelopeName = "Microsoft.ApplicationInsights.Metric"
	baseType     = "MetricData"
)

// envelopes encodes one series' window: the outcome counter and, when some outcomes were timed, the
// duration aggregate.
func (r *Recorder) envelopes(k seriesKey, a *aggregate, start time.Time) [][]byte {
	props := map[string]string{DimKind: k.kind, DimProvider: k.provider}
	if k.trigger != "" {
		props[DimTrigger] = k.trigger
	}
	if k.class != "" {
		props[DimClass] = k.class
	}
	if k.vault != "" {
		props[DimVault] = k.vault
	}
	if k.overflow {
		props[DimOverflow] = "true"
	}
	ts := start.UTC().Format(time.RFC3339Nano)
	n := min(a.n, math.MaxInt32)
	points := []dataPoint{{Name: MetricOutcomes, Value: float64(a.n), Count: n, Min: 1, Max: 1}}
	if a.timed > 0 {
		points = append(points, dataPoint{
			Name:   MetricDuration,
			Value:  a.sum,
			Count:  min(a.timed, math.MaxInt32),
			Min:    a.min,
			Max:    a.max,
			StdDev: math.Sqrt(max(a.m2, 0) / float64(a.timed)),
		})
	}
	out := make([][]byte, 0, len(points))
	for _, p := range points {
		b, err := json.Marshal(envelope{
			Name: envelopeName,
			Time: ts,
			IKey: r.conn.InstrumentationKey,
			Tags: r.tags,
			Data: envelopeData{BaseType: baseType, BaseData: metricData{Ver: 2, Metrics: []dataPoint{p}, Properties: props}},
		})
		if err != nil { // only non-finite numbers can fail; never sent
			r.nDropped.Add(1)
			continue
		}
		out = append(out, b)
	}
	return out
}
