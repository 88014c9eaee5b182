package speaker

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldlb/herald/internal/bgp"
	"github.com/heraldlb/herald/internal/bgpwhy"
	"github.com/heraldlb/herald/internal/election"
)

// Collector exposes a speaker's figures to Prometheus. It reads the
// counters at scrape time, so it holds no state of its own. Register it on
// a registry of the binary's own (not the global one).
type Collector struct {
	s *Speaker

	announced, members, ipvs                       *prometheus.Desc
	arpReq, arpRep, garp, ndpSol, ndpAdv, unsolNA  *prometheus.Desc
	malformed, sendErr, mismatches                 *prometheus.Desc
	rejected, rotations, keyInfo, keys, reannounce *prometheus.Desc
	bgpUp, bgpState, bgpPrefixes, bgpUpdates       *prometheus.Desc
	bgpNotif, bfdUp, bgpAdvertised                 *prometheus.Desc
	rebuilds, elections, bgpPlans, unannounced     *prometheus.Desc
	annWrites, annFailures, unadvertised           *prometheus.Desc
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
		rejected:   d("memberlist_rejected_packets_total", "Memberlist packets and streams discarded: undecryptable (key mismatches included) or undecodable."),
		rotations:  d("memberlist_key_rotations_total", "Times this speaker switched the key it encrypts the gossip with."),
		keyInfo:    d("memberlist_primary_key_info", "1, labelled with the fingerprint of the key this speaker encrypts the gossip with.", "fingerprint"),
		keys:       d("memberlist_keys", "Keys this speaker decrypts the gossip with: 1 outside a rotation."),
		reannounce: d("layer2_reannounces_total", "Rounds of gratuitous ARP / unsolicited NA re-sent for every owned IP after a membership change."),

		bgpUp:         d("bgp_session_up", "1 when the BGP session to the peer is established.", "peer", "address"),
		bgpState:      d("bgp_session_state", "The BGP session's FSM state: 1 for the current state.", "peer", "state"),
		bgpPrefixes:   d("bgp_announced_prefixes", "Prefixes advertised on the session, by family.", "peer", "family"),
		bgpUpdates:    d("bgp_updates_sent_total", "BGP UPDATE messages sent to the peer.", "peer"),
		bgpNotif:      d("bgp_notifications_sent_total", "BGP NOTIFICATION messages sent to the peer.", "peer"),
		bfdUp:         d("bfd_session_up", "1 when the BFD session with the peer is up; only peers with a BFD profile.", "peer"),
		bgpAdvertised: d("bgp_advertised_prefixes", "Prefixes this node hands to its BGP server, all peers together."),
		rebuilds:      d("config_rebuilds_total", "Configuration snapshots built: one per change of a configuration object's spec or of a peer's Secret."),
		elections:     d("elections_total", "Election keys (groups of Services that share addresses) decided again."),
		bgpPlans:      d("bgp_plans_total", "Election keys whose BGP advertisements were planned again."),
		unannounced: d("layer2_unannounced_ips", "Allocated IPs that no node announces in layer 2 mode, by reason; "+
			"counted by one speaker (the live one with the lowest node name), 0 on the others.", "reason"),
		unadvertised: d("bgp_unadvertised_ips", "Allocated IPs that no router can learn in BGP mode, by reason "+
			"(NoEstablishedSession: no advertising node has an established session to a peer it advertises them to; "+
			"NoAdvertisingNode: a BGPAdvertisement covers them but no node advertises them and layer 2 does not announce them); "+
			"counted by one speaker (the live one with the lowest node name), 0 on the others.", "reason"),
		annWrites:   d("announcement_status_writes_total", "ServiceAnnouncement writes this speaker made, by operation (apply, delete).", "op"),
		annFailures: d("announcement_status_write_failures_total", "ServiceAnnouncement writes that failed and were retried."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.announced, c.members, c.ipvs, c.arpReq, c.arpRep, c.garp, c.ndpSol,
		c.ndpAdv, c.unsolNA, c.malformed, c.sendErr, c.mismatches, c.rejected, c.rotations, c.keyInfo, c.keys, c.reannounce,
		c.bgpUp, c.bgpState, c.bgpPrefixes, c.bgpUpdates, c.bgpNotif, c.bfdUp, c.bgpAdvertised, c.rebuilds, c.elections, c.bgpPlans, c.unannounced,
		c.annWrites, c.annFailures, c.unadvertised} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	v4, v6 := c.s.AnnouncedIPs()
	ch <- prometheus.MustNewConstMetric(c.announced, prometheus.GaugeValue, float64(v4), "arp")
	ch <- prometheus.MustNewConstMetric(c.announced, prometheus.GaugeValue, float64(v6), "ndp")
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(c.s.Members()))
	rebuilds, elections := c.s.Work()
	ch <- prometheus.MustNewConstMetric(c.rebuilds, prometheus.CounterValue, float64(rebuilds))
	ch <- prometheus.MustNewConstMetric(c.elections, prometheus.CounterValue, float64(elections))
	ch <- prometheus.MustNewConstMetric(c.bgpPlans, prometheus.CounterValue, float64(c.s.bgpPlans.Load()))
	un := c.s.UnannouncedIPs()
	for _, r := range []election.Reason{election.ReasonNoLiveNode, election.ReasonNoAdvertisement, election.ReasonExcluded,
		election.ReasonNotSelected, election.ReasonNoInterface, election.ReasonNoEndpoint} {
		ch <- prometheus.MustNewConstMetric(c.unannounced, prometheus.GaugeValue, float64(un[r]), string(r))
	}
	if c.s.bgpRep != nil {
		ua := c.s.UnadvertisedIPs()
		for _, r := range []string{bgpwhy.ReasonNoSession, bgpwhy.ReasonNoNode} {
			ch <- prometheus.MustNewConstMetric(c.unadvertised, prometheus.GaugeValue, float64(ua[r]), r)
		}
	}
	applies, deletes, failures := c.s.ann.Writes()
	ch <- prometheus.MustNewConstMetric(c.annWrites, prometheus.CounterValue, float64(applies), "apply")
	ch <- prometheus.MustNewConstMetric(c.annWrites, prometheus.CounterValue, float64(deletes), "delete")
	ch <- prometheus.MustNewConstMetric(c.annFailures, prometheus.CounterValue, float64(failures))
	ipvs := 0.0
	if c.s.IPVSWithoutStrictARP() {
		ipvs = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ipvs, prometheus.GaugeValue, ipvs)
	st := c.s.announcer.Stats()
	rejected, rotations := c.s.MemberlistRejected()
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
		{c.rejected, rejected},
		{c.rotations, rotations},
		{c.reannounce, st.Reannounces.Load()},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
	if ks := c.s.KeyState(); ks.Primary != "" {
		ch <- prometheus.MustNewConstMetric(c.keyInfo, prometheus.GaugeValue, 1, ks.Primary)
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(len(ks.Accepted)))
	}
	c.collectBGP(ch)
}

// collectBGP reports the sessions, read from the BGP server at scrape time.
func (c *Collector) collectBGP(ch chan<- prometheus.Metric) {
	if c.s.bgp == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.bgpAdvertised, prometheus.GaugeValue, float64(c.s.BGPAdvertised()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	peers, err := c.s.BGPStatus(ctx)
	if err != nil {
		return
	}
	for _, p := range peers {
		up := 0.0
		if p.State == bgp.StateEstablished {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.bgpUp, prometheus.GaugeValue, up, p.Name, p.Address.String())
		for st := bgp.StateIdle; st <= bgp.StateEstablished; st++ {
			v := 0.0
			if p.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.bgpState, prometheus.GaugeValue, v, p.Name, st.String())
		}
		for fam, n := range p.PrefixesSent {
			ch <- prometheus.MustNewConstMetric(c.bgpPrefixes, prometheus.GaugeValue, float64(n), p.Name, fam)
		}
		ch <- prometheus.MustNewConstMetric(c.bgpUpdates, prometheus.CounterValue, float64(p.UpdatesSent), p.Name)
		ch <- prometheus.MustNewConstMetric(c.bgpNotif, prometheus.CounterValue, float64(p.NotificationsSent), p.Name)
		if p.BFD != bgp.BFDDisabled {
			v := 0.0
			if p.BFD == bgp.BFDUp {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.bfdUp, prometheus.GaugeValue, v, p.Name)
		}
	}
}
