package overlay

import (
	"runtime"
	"testing"

	"github.com/nodewire/nodewire/overlay/control"
)

func TestProcessStats(t *testing.T) {
	runtime.GC()
	var st control.Status
	processStats(&st)
	if st.Goroutines < 1 || st.RSSBytes < 1<<20 || st.HeapLiveBytes == 0 || st.GCCycles == 0 {
		t.Fatalf("processStats: %d goroutines, %d bytes resident, %d live heap, %d GCs", st.Goroutines, st.RSSBytes, st.HeapLiveBytes, st.GCCycles)
	}
}
