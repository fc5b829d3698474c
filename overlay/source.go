package overlay

import (
	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/overlay/internal/promtext"
)

// SetSource tells the daemon where its peer file comes from besides the
// local file (an etcd key, watched by overlay/etcdsource in overlayd's main,
// which hands each value to ApplyPeerFile), so that status and metrics show
// the source's state. status is called on every status request and scrape:
// it must answer from memory, never wait on the source.
func (d *Daemon) SetSource(status func() control.SourceStatus) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.source = status
}

// sourceStatus is the source's state, or nil without one.
func (d *Daemon) sourceStatus() *control.SourceStatus {
	d.mu.Lock()
	src := d.source
	d.mu.Unlock()
	if src == nil {
		return nil
	}
	st := src()
	return &st
}

// writeSourceMetrics adds the source's families, if there is a source.
func writeSourceMetrics(w *promtext.Writer, st *control.SourceStatus) {
	if st == nil {
		return
	}
	w.Family("nodewire_peer_source_connected", promtext.Gauge, "1 while the peer-file source (etcd) answers, 0 while the daemon runs on the last good file.")
	w.Sample(b2f(st.Connected), "url", st.URL)
	w.Family("nodewire_peer_source_revision", promtext.Gauge, "etcd revision of the peer file last applied from the source (0: running on the cached file).")
	w.Sample(float64(st.Revision), "url", st.URL)
	w.Family("nodewire_peer_source_seen_revision", promtext.Gauge, "etcd revision of the last value the source offered (applied or refused).")
	w.Sample(float64(st.Seen), "url", st.URL)
	w.Family("nodewire_peer_source_refused_total", promtext.Counter, "Values from the source the daemon refused (invalid, or by the --trust policy); the last good file kept.")
	w.Sample(float64(st.Refused), "url", st.URL)
	w.Family("nodewire_peer_source_errors_total", promtext.Counter, "Failed connections to, and watches of, the source.")
	w.Sample(float64(st.Errors), "url", st.URL)
}
