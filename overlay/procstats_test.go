package overlay

import "testing"

func TestProcessStats(t *testing.T) {
	g, rss := processStats()
	if g < 1 || rss < 1<<20 {
		t.Fatalf("processStats() = %d goroutines, %d bytes resident", g, rss)
	}
}
