package metrics

import dto "github.com/prometheus/client_model/go"

// FamiliesOf lets the tests describe a scrape as Families does.
var FamiliesOf = familiesOf

// Gather reads the metrics' registry, for the tests.
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) { return m.reg.Gather() }

var ExchangeOutcomes = exchangeOutcomes
