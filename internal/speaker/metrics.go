package speaker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes a speaker's figures to Prometheus. It reads the
// counters at scrape time, so it holds no state of its own. Register it on
// a registry of the binary's own (not the global one).
type Collector struct {
	s *Speaker

	announced, members, ipvs                      *prometheus.Desc
	arpReq, arpRep, garp, ndpSol, ndpAdv, unsolNA *prometheus.Desc
	malformed, sendErr, mismatches                *prometheus.Desc
}

// NewCollector returns the collector of s.
func NewCollector(s *Speaker) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("herald_"+name, help, labels, nil)
	}
	return &Collector{
		s:          s,
		announced:  d("layer2_announced_ips", "IPs this node answers for, by protocol (arp, ndp).", "protocol"),
		members:    d("memberlist_members", "Live members of the speakers' memberlist, this one included."),
		ipvs:       d("speaker_ipvs_strict_arp_missing", "1 when kube-proxy runs in IPVS mode without strictARP on this node."),
		arpReq:     d("layer2_arp_requests_total", "ARP requests received, for any target."),
		arpRep:     d("layer2_arp_replies_total", "ARP replies sent for owned IPs."),
		garp:       d("layer2_gratuitous_arp_total", "Gratuitous ARP packets sent."),
		ndpSol:     d("layer2_ndp_solicitations_total", "Neighbour solicitations received, for any target."),
		ndpAdv:     d("layer2_ndp_advertisements_total", "Solicited neighbour advertisements sent for owned IPs."),
		unsolNA:    d("layer2_unsolicited_na_total", "Unsolicited neighbour advertisements sent."),
		malformed:  d("layer2_malformed_packets_total", "Received ARP or NDP packets that could not be parsed."),
		sendErr:    d("layer2_send_errors_total", "ARP or NDP packets that could not be sent."),
		mismatches: d("memberlist_key_mismatches_total", "Memberlist packets that could not be decrypted: a speaker uses another Secret."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.announced, c.members, c.ipvs, c.arpReq, c.arpRep, c.garp, c.ndpSol,
		c.ndpAdv, c.unsolNA, c.malformed, c.sendErr, c.mismatches} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	v4, v6 := c.s.AnnouncedIPs()
	ch <- prometheus.MustNewConstMetric(c.announced, prometheus.GaugeValue, float64(v4), "arp")
	ch <- prometheus.MustNewConstMetric(c.announced, prometheus.GaugeValue, float64(v6), "ndp")
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(c.s.Members()))
	ipvs := 0.0
	if c.s.IPVSWithoutStrictARP() {
		ipvs = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ipvs, prometheus.GaugeValue, ipvs)
	st := c.s.Announcer().Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{
		{c.arpReq, st.ARPRequests.Load()},
		{c.arpRep, st.ARPReplies.Load()},
		{c.garp, st.GratuitousARP.Load()},
		{c.ndpSol, st.NDPSolicitations.Load()},
		{c.ndpAdv, st.NDPAdvertisements.Load()},
		{c.unsolNA, st.UnsolicitedNA.Load()},
		{c.malformed, st.Malformed.Load()},
		{c.sendErr, st.SendErrors.Load()},
		{c.mismatches, c.s.KeyMismatches()},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
}
