package rrd

import (
	"errors"
	"fmt"
	"math"
)

// ErrOutdated is returned for an update whose time is not after the last
// update of the series (rrdtool: "illegal attempt to update using time
// ... (minimum one second step)"). A gossip layer that may deliver a
// record twice can ignore it.
var ErrOutdated = errors.New("update time not after the last update")

// state is everything of one RRD but its rows: rrdtool's live head,
// pdp_prep and cdp_prep, in the units rrd_update.c keeps them. It is not
// safe for concurrent use.
type state struct {
	s      *Schema
	lastUp int64 // time of the last update (Unix seconds)
	// per data source
	lastDS  []float64 // raw value of the last update; NaN is "U"
	pdpVal  []float64 // rate*seconds collected in the open PDP; NaN: none
	pdpUnkn []int64   // unknown seconds in the open PDP
	// per archive and data source (index rra*len(ds)+ds)
	cdpVal  []float64 // consolidation of the open row so far
	cdpUnkn []int64   // unknown PDPs in the open row

	// scratch of one update, never persisted
	pdpNew, openNew, pdpTemp []float64
	primary, secondary       []float64
	stepCnt                  []int64
}

// newState is rrd_create's initial state for a series created at start.
func newState(s *Schema, start int64) *state {
	st := allocState(s)
	st.lastUp = start
	for i := range s.ds {
		st.lastDS[i] = math.NaN()
		st.pdpVal[i] = math.NaN()
		st.pdpUnkn[i] = start % s.step
	}
	for r, a := range s.rra {
		for i := range s.ds {
			k := r*len(s.ds) + i
			st.cdpVal[k] = math.NaN()
			// PDPs of the open row before the start are unknown
			st.cdpUnkn[k] = ((start - st.pdpUnkn[i]) % (s.step * a.Steps)) / s.step
		}
	}
	return st
}

func allocState(s *Schema) *state {
	nds, n := len(s.ds), len(s.ds)*len(s.rra)
	f := make([]float64, 5*nds+3*n)
	u := make([]int64, nds+n+len(s.rra))
	return &state{s: s,
		lastDS: f[0:nds:nds], pdpVal: f[nds : 2*nds : 2*nds],
		pdpNew: f[2*nds : 3*nds : 3*nds], openNew: f[3*nds : 4*nds : 4*nds], pdpTemp: f[4*nds : 5*nds : 5*nds],
		cdpVal: f[5*nds : 5*nds+n : 5*nds+n], primary: f[5*nds+n : 5*nds+2*n : 5*nds+2*n],
		secondary: f[5*nds+2*n:],
		pdpUnkn:   u[0:nds:nds], cdpUnkn: u[nds : nds+n : nds+n], stepCnt: u[nds+n:],
	}
}

// emitFunc receives a finished row of archive rra (an owner archive, see
// Schema.owner): the consolidated values for the interval ending at end.
// row is only valid during the call.
type emitFunc func(rra int, end int64, row []float64)

// update applies the reading vals (NaN unknown, one per data source) at
// time t, as rrd_update does with integer times, and passes the rows it
// completes to emit in time order.
func (st *state) update(t int64, vals []float64, emit emitFunc) error {
	s := st.s
	if len(vals) != len(s.ds) {
		return fmt.Errorf("expected %d data source readings (got %d)", len(s.ds), len(vals))
	}
	if t <= st.lastUp {
		return fmt.Errorf("update at %d, last update at %d: %w", t, st.lastUp, ErrOutdated)
	}
	interval := float64(t - st.lastUp)

	// update_pdp_prep: what this reading adds, as rate*seconds
	for i, ds := range s.ds {
		hb := float64(ds.Heartbeat)
		if hb < interval {
			st.lastDS[i] = math.NaN() // no diffs across a heartbeat gap
		}
		v := vals[i]
		if math.IsInf(v, 0) {
			v = math.NaN() // not representable in an answer: unknown
		}
		pdpNew, rate := math.NaN(), math.NaN()
		if !math.IsNaN(v) && hb >= interval {
			switch ds.Type {
			case Derive:
				if !math.IsNaN(st.lastDS[i]) {
					pdpNew = v - st.lastDS[i]
					rate = pdpNew / interval
				}
			default: // Gauge
				pdpNew = v * interval
				rate = v
			}
			if !math.IsNaN(rate) && (!math.IsNaN(ds.Max) && rate > ds.Max || !math.IsNaN(ds.Min) && rate < ds.Min) {
				pdpNew = math.NaN()
			}
		}
		st.pdpNew[i] = pdpNew
		st.lastDS[i] = v
	}

	// calculate_elapsed_steps
	step := s.step
	procPdpSt := st.lastUp - st.lastUp%step
	occuPdpAge := t % step
	occuPdpSt := t - occuPdpAge
	preInt, postInt := interval, 0.0
	if occuPdpSt > procPdpSt {
		preInt = float64(occuPdpSt - st.lastUp)
		postInt = float64(occuPdpAge)
	}
	procPdpCnt := procPdpSt / step
	elapsed := (occuPdpSt - procPdpSt) / step

	if elapsed == 0 { // simple_update
		for i, pn := range st.pdpNew {
			switch {
			case math.IsNaN(pn):
				st.pdpUnkn[i] += int64(math.Floor(interval))
			case math.IsNaN(st.pdpVal[i]):
				st.pdpVal[i] = pn
			default:
				st.pdpVal[i] += pn
			}
		}
		st.lastUp = t
		return nil
	}
	if elapsed > 1 {
		// rrdtool closes a PDP left half-open by the last update on its
		// own, with the share of this reading that falls into it
		if secOpen := int64(preInt) % step; secOpen > 0 {
			for i, pn := range st.pdpNew {
				if !math.IsNaN(pn) && interval > 0 {
					st.openNew[i] = pn * float64(secOpen) / interval
					st.pdpNew[i] -= st.openNew[i]
				} else {
					st.openNew[i] = math.NaN()
				}
			}
			st.closePDPs(float64(secOpen), float64(secOpen), 0, 1, procPdpCnt, st.openNew, st.lastUp+secOpen, emit)
			interval -= float64(secOpen)
			preInt -= float64(secOpen)
			elapsed--
			procPdpCnt++
		}
	}
	st.closePDPs(interval, preInt, postInt, elapsed, procPdpCnt, st.pdpNew, t, emit)
	st.lastUp = t
	return nil
}

// closePDPs is process_all_pdp_st, update_all_cdp_prep and write_to_rras
// for elapsed (>= 1) finished PDPs: it computes the rate of the PDPs,
// feeds it to every archive and emits the rows that completed up to ct.
func (st *state) closePDPs(interval, preInt, postInt float64, elapsed, procPdpCnt int64, pdpNew []float64, ct int64, emit emitFunc) {
	s := st.s
	nds := len(s.ds)
	diffPdpSt := elapsed * s.step
	for i, ds := range s.ds { // process_pdp_st
		preUnknown := 0.0
		if math.IsNaN(pdpNew[i]) {
			preUnknown = preInt
		} else {
			if math.IsNaN(st.pdpVal[i]) {
				st.pdpVal[i] = 0
			}
			st.pdpVal[i] += pdpNew[i] / interval * preInt
		}
		if interval > float64(ds.Heartbeat) || float64(s.step)/2.0 < float64(st.pdpUnkn[i]) {
			st.pdpTemp[i] = math.NaN()
		} else {
			st.pdpTemp[i] = st.pdpVal[i] / (float64(diffPdpSt-st.pdpUnkn[i]) - preUnknown)
		}
		if math.IsNaN(pdpNew[i]) {
			st.pdpUnkn[i] = int64(math.Floor(postInt))
			st.pdpVal[i] = math.NaN()
		} else {
			st.pdpUnkn[i] = 0
			st.pdpVal[i] = pdpNew[i] / interval * postInt
		}
	}

	for r, a := range s.rra { // update_all_cdp_prep
		startPdpOffset := a.Steps - procPdpCnt%a.Steps
		st.stepCnt[r] = 0
		if startPdpOffset <= elapsed {
			st.stepCnt[r] = min((elapsed-startPdpOffset)/a.Steps+1, a.Rows)
		}
		for i := range nds {
			k := r*nds + i
			if a.Steps == 1 {
				// reset_cdp / update_aberrant_CF: the row is the PDP
				st.primary[k], st.secondary[k] = st.pdpTemp[i], st.pdpTemp[i]
				continue
			}
			st.updateCDP(k, a, st.pdpTemp[i], st.stepCnt[r], elapsed, startPdpOffset)
		}
	}

	for r, a := range s.rra { // write_to_rras
		n := st.stepCnt[r]
		if n == 0 || s.owner[r] != r {
			continue
		}
		rs := s.step * a.Steps
		last := ct - ct%rs
		for j := range n {
			src := st.secondary
			if j == 0 {
				src = st.primary
			}
			emit(r, last-(n-1-j)*rs, src[r*nds:(r+1)*nds])
		}
	}
}

// updateCDP is update_cdp for the value k of archive a (Steps > 1).
func (st *state) updateCDP(k int, a RRA, pdpTemp float64, stepCnt, elapsed, startPdpOffset int64) {
	if stepCnt == 0 {
		if math.IsNaN(pdpTemp) {
			st.cdpUnkn[k] += elapsed
			return
		}
		cv := st.cdpVal[k]
		switch {
		case math.IsNaN(cv) && a.CF == Average:
			st.cdpVal[k] = pdpTemp * float64(elapsed)
		case math.IsNaN(cv):
			st.cdpVal[k] = pdpTemp
		case a.CF == Average:
			st.cdpVal[k] = cv + pdpTemp*float64(elapsed)
		case pdpTemp > cv:
			st.cdpVal[k] = pdpTemp
		}
		return
	}
	if math.IsNaN(pdpTemp) {
		st.cdpUnkn[k] += startPdpOffset
		st.secondary[k] = math.NaN()
	} else {
		st.secondary[k] = pdpTemp
	}
	if float64(st.cdpUnkn[k]) > float64(a.Steps)*a.XFF {
		st.primary[k] = math.NaN()
	} else { // initialize_cdp_val
		switch a.CF {
		case Average:
			cum, cur := ifNaN(st.cdpVal[k], 0), ifNaN(pdpTemp, 0)
			st.primary[k] = (cum + cur*float64(startPdpOffset)) / float64(a.Steps-st.cdpUnkn[k])
		default: // Max
			cum, cur := ifNaN(st.cdpVal[k], math.Inf(-1)), ifNaN(pdpTemp, math.Inf(-1))
			st.primary[k] = max(cur, cum)
		}
	}
	// initialize_carry_over
	into := (elapsed - startPdpOffset) % a.Steps
	switch {
	case (into == 0 || math.IsNaN(pdpTemp)) && a.CF == Average:
		st.cdpVal[k] = 0
	case into == 0 || math.IsNaN(pdpTemp):
		st.cdpVal[k] = math.Inf(-1)
	case a.CF == Average:
		st.cdpVal[k] = pdpTemp * float64(into)
	default:
		st.cdpVal[k] = pdpTemp
	}
	if math.IsNaN(pdpTemp) {
		st.cdpUnkn[k] = into
	} else {
		st.cdpUnkn[k] = 0
	}
}

func ifNaN(v, alt float64) float64 {
	if math.IsNaN(v) {
		return alt
	}
	return v
}
