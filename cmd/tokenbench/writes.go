package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// WriteCounts are the server's counts of its write transactions, from its
// metrics (pkg/metrics): begun, attempts that lost a conflict (on Galera, a
// certification failure) and ran again, and transactions that gave up.
type WriteCounts struct {
	Transactions float64 `json:"db_transactions,omitempty"`
	Conflicts    float64 `json:"db_conflicts,omitempty"`
	GaveUp       float64 `json:"db_given_up,omitempty"`
}

// The metrics WriteCounts reads.
const (
	metricTransactions = "tokenservice_db_transactions_total"
	metricConflicts    = "tokenservice_db_transaction_conflicts_total"
	metricGaveUp       = "tokenservice_db_transactions_given_up_total"
)

// minus returns the counts since before.
func (w WriteCounts) minus(before WriteCounts) WriteCounts {
	return WriteCounts{w.Transactions - before.Transactions, w.Conflicts - before.Conflicts, w.GaveUp - before.GaveUp}
}

// conflictsPerTransaction is the attempts that lost a conflict per
// transaction; 0 when there was none.
func (w WriteCounts) conflictsPerTransaction() float64 {
	if w.Transactions == 0 {
		return 0
	}
	return w.Conflicts / w.Transactions
}

// scrapeWrites reads the write counts from the server's metrics.
func scrapeWrites(ctx context.Context, metricsURL string) (WriteCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return WriteCounts{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return WriteCounts{}, fmt.Errorf("scraping the server's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return WriteCounts{}, fmt.Errorf("scraping the server's metrics: HTTP %d", resp.StatusCode)
	}
	return parseWrites(resp.Body)
}

// parseWrites reads the write counts from the Prometheus text format; a
// server without them is an error (an older binary).
func parseWrites(r io.Reader) (WriteCounts, error) {
	var w WriteCounts
	fields := map[string]*float64{metricTransactions: &w.Transactions, metricConflicts: &w.Conflicts, metricGaveUp: &w.GaveUp}
	seen := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if p := fields[name]; ok && p != nil {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return WriteCounts{}, fmt.Errorf("metric %s: %w", name, err)
			}
			*p = v
			seen++
		}
	}
	if err := sc.Err(); err != nil {
		return WriteCounts{}, err
	}
	if seen != len(fields) {
		return WriteCounts{}, fmt.Errorf("the server's metrics lack %s and its kin (a binary older than issue 19's item 5?)", metricTransactions)
	}
	return w, nil
}
